package route

import (
	"fmt"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// RetryOn is a set of Envoy retry conditions (x-envoy-retry-on and
// x-envoy-retry-grpc-on names).
type RetryOn uint32

const (
	Retry5xx RetryOn = 1 << iota
	RetryGatewayError
	RetryReset
	RetryConnectFailure
	RetryRetriable4xx
	RetryRefusedStream
	RetryStatusCodes
	RetryHeaders
	RetryGrpcCancelled
	RetryGrpcDeadlineExceeded
	RetryGrpcUnavailable
	RetryGrpcResourceExhausted
	RetryGrpcInternal
	RetryResetBeforeRequest
)

// retryCondition maps one retry_on / x-envoy-retry-on name.
func retryCondition(n string) (RetryOn, bool) {
	switch n {
	case "5xx":
		return Retry5xx, true
	case "gateway-error":
		return RetryGatewayError, true
	case "reset":
		return RetryReset, true
	case "connect-failure":
		return RetryConnectFailure, true
	case "retriable-4xx":
		return RetryRetriable4xx, true
	case "refused-stream":
		return RetryRefusedStream, true
	case "retriable-status-codes":
		return RetryStatusCodes, true
	case "retriable-headers":
		return RetryHeaders, true
	case "cancelled":
		return RetryGrpcCancelled, true
	case "deadline-exceeded":
		return RetryGrpcDeadlineExceeded, true
	case "unavailable":
		return RetryGrpcUnavailable, true
	case "resource-exhausted":
		return RetryGrpcResourceExhausted, true
	case "internal":
		return RetryGrpcInternal, true
	case "reset-before-request":
		return RetryResetBeforeRequest, true
	}
	return 0, false
}

// ParseRetryOn reads a comma-separated list of conditions (the
// x-envoy-retry-on / x-envoy-retry-grpc-on headers), skipping unknown ones
// as Envoy does.
func ParseRetryOn(list string) RetryOn {
	var on RetryOn
	for _, n := range strings.Split(list, ",") {
		if f, ok := retryCondition(strings.TrimSpace(n)); ok {
			on |= f
		}
	}
	return on
}

// DefaultRetryPolicy is what request headers alone ask for (no route
// policy): one retry with Envoy's default back-off.
func DefaultRetryPolicy() *RetryPolicy {
	return &RetryPolicy{NumRetries: 1, BackoffBase: defaultBackoffBase, BackoffMax: 10 * defaultBackoffBase}
}

// RetryPolicy is a compiled retry policy.
type RetryPolicy struct {
	On            RetryOn
	NumRetries    int
	PerTryTimeout time.Duration
	StatusCodes   []int
	Headers       []*HeaderMatch // retriable_headers, matched on the response
	// PreviousHosts: the envoy.retry_host_predicates.previous_hosts
	// predicate (do not retry on a host already tried).
	PreviousHosts      bool
	HostSelectAttempts int
	BackoffBase        time.Duration
	BackoffMax         time.Duration
}

// Envoy's defaults: base 25ms, max 10 × base.
const defaultBackoffBase = 25 * time.Millisecond

func compileRetry(p *routev3.RetryPolicy, path string) (*RetryPolicy, error) {
	if err := xdsfield.Check(p, path, "retry_on", "num_retries", "per_try_timeout", "retry_host_predicate",
		"host_selection_retry_max_attempts", "retriable_status_codes", "retry_back_off",
		"retriable_headers"); err != nil {
		return nil, err
	}
	out := &RetryPolicy{NumRetries: 1, PerTryTimeout: Dur(p.GetPerTryTimeout()),
		HostSelectAttempts: int(p.GetHostSelectionRetryMaxAttempts()), BackoffBase: defaultBackoffBase}
	if p.GetNumRetries() != nil {
		out.NumRetries = int(p.GetNumRetries().GetValue())
	}
	for _, n := range strings.Split(p.GetRetryOn(), ",") {
		n = strings.TrimSpace(n)
		if n == "" {
			continue
		}
		f, ok := retryCondition(n)
		if !ok {
			return nil, fmt.Errorf("%s.retry_on: unknown retry condition %q", path, n)
		}
		out.On |= f
	}
	for _, c := range p.GetRetriableStatusCodes() {
		out.StatusCodes = append(out.StatusCodes, int(c))
	}
	for i, h := range p.GetRetriableHeaders() {
		hm, err := CompileHeaderMatch(h, fmt.Sprintf("%s.retriable_headers[%d]", path, i))
		if err != nil {
			return nil, err
		}
		out.Headers = append(out.Headers, hm)
	}
	for i, pr := range p.GetRetryHostPredicate() {
		if pr.GetName() != "envoy.retry_host_predicates.previous_hosts" {
			return nil, fmt.Errorf("%s.retry_host_predicate[%d].name: %q not supported by weft-proxy", path, i, pr.GetName())
		}
		out.PreviousHosts = true
	}
	if b := p.GetRetryBackOff(); b != nil {
		if b.GetBaseInterval() == nil || Dur(b.GetBaseInterval()) <= 0 {
			return nil, fmt.Errorf("%s.retry_back_off.base_interval: must be greater than 0", path)
		}
		out.BackoffBase = Dur(b.GetBaseInterval())
		out.BackoffMax = Dur(b.GetMaxInterval())
		if out.BackoffMax != 0 && out.BackoffMax < out.BackoffBase {
			return nil, fmt.Errorf("%s.retry_back_off.max_interval: must be at least base_interval", path)
		}
	}
	if out.BackoffMax == 0 {
		out.BackoffMax = 10 * out.BackoffBase
	}
	return out, nil
}

// RetriableStatus reports whether a response status triggers a retry.
func (p *RetryPolicy) RetriableStatus(code int) bool {
	switch {
	case p.On&Retry5xx != 0 && code >= 500:
		return true
	case p.On&RetryGatewayError != 0 && (code == 502 || code == 503 || code == 504):
		return true
	case p.On&RetryRetriable4xx != 0 && code == 409:
		return true
	case p.On&RetryStatusCodes != 0:
		for _, c := range p.StatusCodes {
			if c == code {
				return true
			}
		}
	}
	return false
}

// RetriableGrpc reports whether a grpc-status value triggers a retry.
func (p *RetryPolicy) RetriableGrpc(status string) bool {
	switch status {
	case "1":
		return p.On&RetryGrpcCancelled != 0
	case "4":
		return p.On&RetryGrpcDeadlineExceeded != 0
	case "8":
		return p.On&RetryGrpcResourceExhausted != 0
	case "13":
		return p.On&RetryGrpcInternal != 0
	case "14":
		return p.On&RetryGrpcUnavailable != 0
	}
	return false
}
