package xds

import (
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/runtime/protoiface"
)

// encoded is a resource whose encoding is already done. go-control-plane
// encodes every resource of every response it sends; a resource shared
// by thousands of proxies would be encoded thousands of times (measured:
// half the CPU of a push at 1,000 services). The hash of each resource
// already needed its deterministic encoding, so the cache is handed
// these wrappers, and the protobuf runtime copies the bytes instead of
// walking the message. Reflection still sees the real resource.
type encoded struct {
	proto.Message
	name  string
	bytes []byte
}

// GetName is the xDS resource name (go-control-plane indexes by it).
func (e *encoded) GetName() string { return e.name }

func (e *encoded) ProtoReflect() protoreflect.Message {
	return encodedReflect{e.Message.ProtoReflect(), e}
}

type encodedReflect struct {
	protoreflect.Message
	e *encoded
}

func (r encodedReflect) Interface() protoreflect.ProtoMessage { return r.e }

func (r encodedReflect) ProtoMethods() *protoiface.Methods { return &encodedMethods }

// encodedMethods is the protobuf fast path for encoded: marshal is the
// stored bytes (deterministic, as they were produced); the resource was
// fully built by translation, so it is initialized. A marshal into an
// empty buffer (go-control-plane's MarshalResource, once per resource per
// response) returns the stored bytes themselves instead of a copy: that
// copy was a quarter of all bytes allocated by a push at 1,000 services ×
// 2,000 proxies. Their capacity is clipped, so a caller appending to them
// gets a new array; nobody writes into a marshaled Any value. There is no
// Size method on purpose: with one, proto.Marshal allocates the output
// buffer before calling Marshal.
var encodedMethods = protoiface.Methods{
	Flags: protoiface.SupportMarshalDeterministic,
	Marshal: func(in protoiface.MarshalInput) (protoiface.MarshalOutput, error) {
		b := in.Message.(encodedReflect).e.bytes
		if len(in.Buf) == 0 {
			return protoiface.MarshalOutput{Buf: b[:len(b):len(b)]}, nil
		}
		return protoiface.MarshalOutput{Buf: append(in.Buf, b...)}, nil
	},
	CheckInitialized: func(protoiface.CheckInitializedInput) (protoiface.CheckInitializedOutput, error) {
		return protoiface.CheckInitializedOutput{}, nil
	},
}
