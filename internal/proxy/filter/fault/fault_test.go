package fault

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

// passed records that the chain reached the next filter.
type passed struct{ n int }

func (p *passed) Serve(*filter.Stream) error { p.n++; return nil }

func run(t *testing.T, cfg *faultv3.HTTPFault, hdr ...string) (error, *filter.Info, []time.Duration, int) {
	t.Helper()
	var slept []time.Duration
	f, err := New(cfg, func(ctx context.Context, d time.Duration) error { slept = append(slept, d); return nil })
	if err != nil {
		t.Fatal(err)
	}
	r := httptest.NewRequest("GET", "/", nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Set(hdr[i], hdr[i+1])
	}
	next := &passed{}
	s := &filter.Stream{W: httptest.NewRecorder(), Req: r, Info: &filter.Info{}}
	err = s.Start([]filter.Filter{f, next})
	return err, s.Info, slept, next.n
}

func pct(n uint32) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: n}
}

func TestFixedFaults(t *testing.T) {
	cfg := &faultv3.HTTPFault{
		Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(2 * time.Second)}, Percentage: pct(100)},
		Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 418}, Percentage: pct(100)},
	}
	err, info, slept, next := run(t, cfg)
	var fe *rflag.Error
	if !errors.As(err, &fe) || fe.Status != 418 || fe.Flag != rflag.FI || info.Flags != rflag.DI || len(slept) != 1 || slept[0] != 2*time.Second || next != 0 {
		t.Fatalf("err %v flags %v slept %v next %d", err, info.Flags, slept, next)
	}
	// 0%: nothing happens.
	cfg.Delay.Percentage, cfg.Abort.Percentage = pct(0), pct(0)
	if err, info, slept, next := run(t, cfg); err != nil || info.Flags != 0 || len(slept) != 0 || next != 1 {
		t.Fatalf("0%%: err %v flags %v slept %v next %d", err, info.Flags, slept, next)
	}
}

func TestHeaderControlledFaults(t *testing.T) {
	cfg := &faultv3.HTTPFault{
		Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_HeaderDelay_{HeaderDelay: &faultcommonv3.FaultDelay_HeaderDelay{}}, Percentage: pct(100)},
		Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HeaderAbort_{HeaderAbort: &faultv3.FaultAbort_HeaderAbort{}}, Percentage: pct(100)},
	}
	// No headers: no fault.
	if err, info, _, next := run(t, cfg); err != nil || info.Flags != 0 || next != 1 {
		t.Fatalf("no headers: %v %v", err, info.Flags)
	}
	err, info, slept, _ := run(t, cfg, "x-envoy-fault-delay-request", "250", "x-envoy-fault-abort-request", "429")
	var fe *rflag.Error
	if !errors.As(err, &fe) || fe.Status != 429 || info.Flags != rflag.DI || slept[0] != 250*time.Millisecond {
		t.Fatalf("headers: %v %v %v", err, info.Flags, slept)
	}
	// The percentage header can lower the configured percentage to 0.
	if err, _, _, _ := run(t, cfg, "x-envoy-fault-abort-request", "429", "x-envoy-fault-abort-request-percentage", "0"); err != nil {
		t.Fatalf("percentage 0 still aborted: %v", err)
	}
	// gRPC abort.
	err, _, _, _ = run(t, cfg, "x-envoy-fault-abort-grpc-request", "14")
	var gs GrpcStatus
	if !errors.As(err, &gs) || gs != "14" {
		t.Fatalf("grpc abort: %v", err)
	}
}

func TestFaultConditions(t *testing.T) {
	cfg := &faultv3.HTTPFault{
		Abort:           &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: 500}, Percentage: pct(100)},
		Headers:         []*routev3.HeaderMatcher{{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "test"}}},
		DownstreamNodes: []string{"node-a"},
		MaxActiveFaults: wrapperspb.UInt32(5),
	}
	if err, _, _, _ := run(t, cfg, "x-user", "test"); err != nil {
		t.Error("aborted without the downstream node")
	}
	if err, _, _, _ := run(t, cfg, "x-envoy-downstream-service-node", "node-a"); err != nil {
		t.Error("aborted without the header")
	}
	if err, _, _, _ := run(t, cfg, "x-user", "test", "x-envoy-downstream-service-node", "node-a"); err == nil {
		t.Error("did not abort when both match")
	}
}

func TestRejectsUnsupported(t *testing.T) {
	_, err := New(&faultv3.HTTPFault{ResponseRateLimit: &faultcommonv3.FaultRateLimit{}}, nil)
	if err == nil {
		t.Fatal("response_rate_limit accepted")
	}
	_ = http.StatusOK
}
