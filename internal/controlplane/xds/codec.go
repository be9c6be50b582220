package xds

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	protocodec "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Codec is the gRPC codec for servers that serve ADS (grpc.ForceServerCodecV2):
// gRPC's protobuf codec, except that a message carrying large unknown
// fields is sent as its known fields followed by the unknown bytes
// themselves, without copying them. Discovery responses carry their
// resources that way (encoded once per type version and shared by every
// proxy holding it, see sotwAll), so a response costs the server a few
// header bytes however many resources it holds. The bytes on the wire are
// the ones proto.Marshal writes (known fields, then unknown ones).
func Codec() encoding.CodecV2 { return wireCodec{encoding.GetCodecV2(protocodec.Name)} }

// GRPCOptions are the options of a gRPC server that serves ADS: Codec,
// and a write buffer taken from a shared pool only while writing (else
// every connection would keep its own). A connection holds its buffer
// while its write waits for the socket, and a push writes to every proxy
// at once: with clients that grant large HTTP/2 windows (Envoy's default
// is 256 MiB), 2,000 proxies held 2,000 buffers. At 256 KiB that was
// 500 MiB (the control plane's peak RSS went from 400 to 790 MiB, a
// quarter of its CPU was GC); 64 KiB bounds it to 125 MiB for a write
// syscall per 64 KiB instead of 256 KiB.
func GRPCOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(Codec()),
		grpc.WriteBufferSize(writeBufferSize),
		grpc.SharedWriteBuffer(true),
	}
}

// writeBufferSize is the ADS server's write buffer (GRPCOptions).
const writeBufferSize = 64 << 10

// sharedUnknownMin is the size from which unknown fields are sent from
// their own buffer; smaller ones are cheaper to copy.
const sharedUnknownMin = 1024

type wireCodec struct{ base encoding.CodecV2 }

func (wireCodec) Name() string { return protocodec.Name }

func (c wireCodec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return c.base.Marshal(v)
	}
	r := m.ProtoReflect()
	unknown := r.GetUnknown()
	if len(unknown) < sharedUnknownMin {
		return c.base.Marshal(v)
	}
	// The known fields, by reference (only read by Marshal).
	known := r.Type().New()
	r.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		known.Set(fd, v)
		return true
	})
	head, err := proto.Marshal(known.Interface())
	if err != nil {
		return nil, err
	}
	return mem.BufferSlice{mem.SliceBuffer(head), mem.SliceBuffer(unknown[:len(unknown):len(unknown)])}, nil
}

func (c wireCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.base.Unmarshal(data, v) }
