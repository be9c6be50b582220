package translate

import (
	"strconv"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// toAny packs m. Marshalling a well-formed generated message cannot fail;
// if it ever did, the nil Any makes Output.Check report the resource.
// Deterministic, so that maps (JSON log formats, metadata) encode the same
// way every time: the bytes are hashed into xDS versions.
func toAny(m proto.Message) *anypb.Any {
	a := &anypb.Any{}
	if err := anypb.MarshalFrom(a, m, proto.MarshalOptions{Deterministic: true}); err != nil {
		return nil
	}
	return a
}

// ads is the config source every dynamic resource uses: the ADS stream.
func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
		InitialFetchTimeout:   durationpb.New(0),
		ResourceApiVersion:    corev3.ApiVersion_V3,
	}
}

func socketAddress(host string, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       host,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func u32(v uint32) *wrapperspb.UInt32Value { return wrapperspb.UInt32(v) }

func dur(d time.Duration) *durationpb.Duration { return durationpb.New(d) }

func str(s string) *structpb.Value { return structpb.NewStringValue(s) }

func itoa(n uint32) string { return strconv.FormatUint(uint64(n), 10) }

// percentFraction converts an Istio percentage (0-100, fractional) to
// Envoy's FractionalPercent per million, as Istio does.
func percentFraction(p float64) *typev3.FractionalPercent {
	if p < 0 {
		p = 0
	}
	if p > 100 {
		p = 100
	}
	return &typev3.FractionalPercent{
		Numerator:   uint32(p*10000 + 0.5),
		Denominator: typev3.FractionalPercent_MILLION,
	}
}

// intPercent is Istio's deprecated integer percent field.
func intPercent(p int32) *typev3.FractionalPercent {
	if p < 0 {
		p = 0
	}
	if p > 100 {
		p = 100
	}
	return &typev3.FractionalPercent{Numerator: uint32(p), Denominator: typev3.FractionalPercent_HUNDRED}
}
