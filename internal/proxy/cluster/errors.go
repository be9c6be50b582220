package cluster

import "github.com/weftmesh/weft/internal/proxy/rflag"

// The errors RoundTrip and Dial return: Envoy's response flags with the
// status and %RESPONSE_CODE_DETAILS% the router answers with.

// overflow: a circuit breaker tripped.
func overflow() error {
	return &rflag.Error{Flag: rflag.UO, Status: 503, Details: "upstream_reset_before_response_started{overflow}"}
}

// connectFailure: TCP connect, TLS handshake or resolution failed.
func connectFailure(err error) error {
	return &rflag.Error{Flag: rflag.UF, Status: 503,
		Details: "upstream_reset_before_response_started{connection_failure}", Err: err}
}

// upstreamReset: the connection ended before a response.
func upstreamReset(err error) error {
	return &rflag.Error{Flag: rflag.UC, Status: 503,
		Details: "upstream_reset_before_response_started{connection_termination}", Err: err}
}

// noHealthy: no host to pick.
func noHealthy() error {
	return &rflag.Error{Flag: rflag.UH, Status: 503, Details: "no_healthy_upstream"}
}
