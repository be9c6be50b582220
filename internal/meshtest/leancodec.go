package meshtest

import (
	"fmt"
	"sync"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// headerCodec decodes discovery responses without their resources: only
// the singular string fields (version, type URL, nonce). With observe set
// it hands observe the encoded resources (every entry of field 2, tag
// included) during the decode, for XDSClientOptions.ObserveRaw.
// Everything else is plain protobuf.
//
// It is a gRPC CodecV2 so that a response is read where gRPC received it:
// a one-buffer message in place, a larger one copied once into a pooled
// buffer. The resources are handed to observe as a slice of that buffer
// when their entries are contiguous (they are from go-control-plane and
// from Weft's server). The simulated proxies of the control-plane bench
// share the cores with the server; the V1 codec they used copied each
// response twice (gRPC's Materialize into a new zeroed buffer, then the
// resources again, plus a regrow): 42% of the harness's CPU in a new
// Service's push to 2,000 state-of-the-world proxies.
type headerCodec struct {
	observe func(typeURL string, raw []byte)
}

func (headerCodec) Name() string { return "proto" }

func (headerCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("not a protobuf message: %T", v)
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(b)}, nil
}

// resourcesField is the field number of resources in DiscoveryResponse
// and DeltaDiscoveryResponse.
const resourcesField = 2

// leanBufs holds the buffers large responses are copied into.
var leanBufs sync.Pool // of *[]byte

func (c headerCodec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("not a protobuf message: %T", v)
	}
	switch v.(type) {
	case *discoveryv3.DiscoveryResponse, *discoveryv3.DeltaDiscoveryResponse:
	default:
		return proto.Unmarshal(data.Materialize(), m)
	}
	if len(data) == 1 {
		return c.decode(data[0].ReadOnlyData(), m)
	}
	n := data.Len()
	bp, _ := leanBufs.Get().(*[]byte)
	if bp == nil || cap(*bp) < n {
		b := make([]byte, n)
		bp = &b
	}
	buf := (*bp)[:n]
	data.CopyTo(buf)
	err := c.decode(buf, m)
	leanBufs.Put(bp)
	return err
}

// decode reads the string fields of a discovery response from data and,
// with observe, hands it the resources (valid only during the call).
func (c headerCodec) decode(data []byte, m proto.Message) error {
	r := m.ProtoReflect()
	fields := r.Descriptor().Fields()
	var raw []byte // the resources' entries, when not contiguous
	start, end := -1, -1
	contiguous := true
	all := data
	for off := 0; off < len(all); {
		num, typ, n := protowire.ConsumeTag(all[off:])
		if n < 0 {
			return protowire.ParseError(n)
		}
		tagAt := off
		off += n
		if fd := fields.ByNumber(num); fd != nil && fd.Kind() == protoreflect.StringKind && !fd.IsList() && typ == protowire.BytesType {
			str, n := protowire.ConsumeString(all[off:])
			if n < 0 {
				return protowire.ParseError(n)
			}
			r.Set(fd, protoreflect.ValueOfString(str))
			off += n
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, all[off:])
		if n < 0 {
			return protowire.ParseError(n)
		}
		off += n
		if c.observe == nil || num != resourcesField {
			continue
		}
		switch {
		case start < 0:
			start, end = tagAt, off
		case contiguous && tagAt == end:
			end = off
		default:
			if contiguous {
				raw = append([]byte(nil), all[start:end]...)
				contiguous = false
			}
			raw = append(raw, all[tagAt:off]...)
		}
	}
	if c.observe == nil {
		return nil
	}
	if contiguous && start >= 0 {
		raw = all[start:end:end]
	}
	c.observe(r.Get(fields.ByName("type_url")).String(), raw)
	return nil
}
