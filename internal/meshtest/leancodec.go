package meshtest

import (
	"fmt"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// headerCodec decodes discovery responses without their resources: only
// the singular string fields (version, type URL, nonce). With raw set it
// keeps the encoded resources (every entry of field 2, tag included, in
// one copy) as the message's unknown fields, for XDSClientOptions.ObserveRaw.
// Everything else is plain protobuf.
type headerCodec struct{ raw bool }

func (headerCodec) Name() string { return "proto" }

func (headerCodec) Marshal(v any) ([]byte, error) { return proto.Marshal(v.(proto.Message)) }

// resourcesField is the field number of resources in DiscoveryResponse
// and DeltaDiscoveryResponse.
const resourcesField = 2

func (c headerCodec) Unmarshal(data []byte, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("not a protobuf message: %T", v)
	}
	switch v.(type) {
	case *discoveryv3.DiscoveryResponse, *discoveryv3.DeltaDiscoveryResponse:
	default:
		return proto.Unmarshal(data, m)
	}
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	var raw []byte
	defer func() {
		if len(raw) > 0 {
			r.SetUnknown(raw)
		}
	}()
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		data = data[n:]
		if fd := fields.ByNumber(num); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() && typ == protowire.BytesType {
			str, n := protowire.ConsumeString(data)
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.Set(fd, protoreflect.ValueOfString(str))
			data = data[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return protowire.ParseError(n)
		}
		if c.raw && num == resourcesField {
			if raw == nil {
				raw = make([]byte, 0, len(data))
			}
			raw = protowire.AppendTag(raw, num, typ)
			raw = append(raw, data[:n]...)
		}
		data = data[n:]
	}
	return nil
}
