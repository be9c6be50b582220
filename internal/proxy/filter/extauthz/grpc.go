package extauthz

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/weftmesh/weft/internal/proxy/filter"
)

func insecureCreds() credentials.TransportCredentials { return insecure.NewCredentials() }

func socketAddr(ap string) *corev3.Address {
	host, port := ap, uint32(0)
	if i := strings.LastIndexByte(ap, ':'); i > 0 {
		host = strings.Trim(ap[:i], "[]")
		fmt.Sscan(ap[i+1:], &port)
	}
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}
}

// check sends Envoy's CheckRequest for the request.
func (g *grpcCheck) check(ctx context.Context, s *filter.Stream) (decision, error) {
	cc, err := g.client()
	if err != nil {
		return decision{}, err
	}
	r := s.Req
	hdrs := make(map[string]string, len(r.Header)+3)
	for k, vs := range r.Header {
		hdrs[strings.ToLower(k)] = strings.Join(vs, ",")
	}
	hdrs[":authority"], hdrs[":method"], hdrs[":path"] = r.Host, r.Method, r.URL.RequestURI()
	attrs := &authv3.AttributeContext{Request: &authv3.AttributeContext_Request{Http: &authv3.AttributeContext_HttpRequest{
		Id: s.Info.RequestID, Method: r.Method, Headers: hdrs, Path: r.URL.RequestURI(), Host: r.Host,
		Scheme: "http", Protocol: r.Proto, Query: r.URL.RawQuery,
	}}}
	if r.TLS != nil {
		attrs.Request.Http.Scheme = "https"
	}
	if c := s.Conn; c != nil {
		attrs.Source = &authv3.AttributeContext_Peer{Address: socketAddr(c.Remote.String())}
		attrs.Destination = &authv3.AttributeContext_Peer{Address: socketAddr(c.Local.String())}
		if id, ok := c.PeerIdentity(); ok {
			attrs.Source.Principal = id.String()
		}
	}
	resp, err := authv3.NewAuthorizationClient(cc).Check(ctx, &authv3.CheckRequest{Attributes: attrs})
	if err != nil {
		return decision{}, err
	}
	if codes.Code(resp.GetStatus().GetCode()) == codes.OK {
		d := decision{allowed: true}
		ok := resp.GetOkResponse()
		for _, h := range ok.GetHeaders() {
			d.upstream = append(d.upstream, filter.Header{Key: http.CanonicalHeaderKey(h.GetHeader().GetKey()), Value: h.GetHeader().GetValue()})
		}
		d.remove = ok.GetHeadersToRemove()
		if len(ok.GetResponseHeadersToAdd()) > 0 {
			d.header = http.Header{}
			for _, h := range ok.GetResponseHeadersToAdd() {
				d.header.Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
			}
		}
		return d, nil
	}
	den := resp.GetDeniedResponse()
	d := decision{status: http.StatusForbidden, header: http.Header{}, body: den.GetBody()}
	if c := den.GetStatus().GetCode(); c != 0 {
		d.status = int(c)
	}
	for _, h := range den.GetHeaders() {
		d.header.Set(h.GetHeader().GetKey(), h.GetHeader().GetValue())
	}
	return d, nil
}
