package identity

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/weftmesh/weft/internal/proxy/xdsclient"
)

// The proxy does not import Istio's API packages (see internal/archtest),
// so it speaks IstioCertificateService with its two small messages encoded
// by hand:
//
//	IstioCertificateRequest  { string csr = 1; int64 validity_duration = 3; }
//	IstioCertificateResponse { repeated string cert_chain = 1; }
const createCertificate = "/istio.v1.auth.IstioCertificateService/CreateCertificate"

// rawCodec passes pre-encoded protobuf bytes through gRPC.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }
func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("rawCodec: %T", v)
	}
	return *b, nil
}
func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("rawCodec: %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

func encodeRequest(csr []byte, ttlSeconds int64) []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.BytesType)
	b = protowire.AppendBytes(b, csr)
	if ttlSeconds > 0 {
		b = protowire.AppendTag(b, 3, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(ttlSeconds))
	}
	return b
}

func decodeResponse(b []byte) ([]string, error) {
	var out []string
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return nil, protowire.ParseError(n)
			}
			out = append(out, string(v))
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		b = b[n:]
	}
	if len(out) == 0 {
		return nil, errors.New("empty cert_chain")
	}
	return out, nil
}

// grpcRequest sends a CSR over TLS (presenting the current certificate,
// if any) with the token as "authorization: Bearer", as Istio's agent does.
func (m *Manager) grpcRequest(ctx context.Context, csr []byte, token string) ([]string, error) {
	conn, err := xdsclient.Dial(m.opts.CAAddress, grpc.WithTransportCredentials(credentials.NewTLS(m.ClientTLS())))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if token != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
	}
	req := encodeRequest(csr, int64(m.opts.TTL.Seconds()))
	var resp []byte
	if err := conn.Invoke(ctx, createCertificate, &req, &resp, grpc.ForceCodec(rawCodec{})); err != nil {
		return nil, err
	}
	return decodeResponse(resp)
}
