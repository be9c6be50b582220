package translate

import (
	"strings"

	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/node"
)

// protocol is Istio's classification of a port.
type protocol int

const (
	protoTCP   protocol = iota
	protoHTTP           // HTTP/1.1 (or sniffed HTTP)
	protoHTTP2          // HTTP2 and GRPC: upstream speaks h2
	protoTLS            // TLS and HTTPS: opaque, routed by SNI
	protoAuto           // unknown: sniffed (HTTP and TCP chains)
)

// portProtocol follows Istio: the declared protocol, else the name prefix,
// else auto-detection.
func portProtocol(p *model.Port) protocol {
	name := strings.ToUpper(p.Protocol)
	if name == "" {
		name = node.ProtocolFromName(p.Name)
	}
	return protocolOf(name)
}

func protocolOf(name string) protocol {
	switch strings.ToUpper(name) {
	case "HTTP":
		return protoHTTP
	case "HTTP2", "GRPC", "GRPC-WEB":
		return protoHTTP2
	case "HTTPS", "TLS":
		return protoTLS
	case "":
		return protoAuto
	}
	return protoTCP // TCP, MONGO, MYSQL, REDIS and other opaque protocols
}

func (p protocol) isHTTP() bool { return p == protoHTTP || p == protoHTTP2 }
