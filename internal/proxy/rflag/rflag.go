// Package rflag holds Envoy's response flags, the short codes that say why a
// request or connection ended the way it did (UH, UF, UO, NR …). Every proxy
// package records them; access logs and metrics print them.
// Semantics: https://www.envoyproxy.io/docs/envoy/latest/configuration/observability/access_log/usage#command-operators
package rflag

import "strings"

// Flags is a set of response flags.
type Flags uint32

const (
	UH    Flags = 1 << iota // no healthy upstream hosts
	UF                      // upstream connection failure
	UO                      // upstream overflow (circuit breaking)
	NR                      // no route configured (or no matching filter chain)
	URX                     // upstream retry limit exceeded / max connect attempts
	UT                      // upstream request timeout
	DC                      // downstream connection termination
	UC                      // upstream connection termination
	LH                      // local service failed health check
	LR                      // connection local reset
	UR                      // upstream remote reset
	DI                      // request delayed by fault injection
	FI                      // request aborted by fault injection
	RL                      // rate limited locally
	UAEX                    // unauthorized by external authorization
	RLSE                    // rate limit service error
	IH                      // invalid header value (strict check)
	SI                      // stream idle timeout
	DPE                     // downstream protocol error
	UPE                     // upstream protocol error
	UMSDR                   // upstream max stream duration reached
	NC                      // no cluster found
	DT                      // request/connection duration exceeded max
	OM                      // overload manager
	RBAC                    // denied by RBAC (Envoy prints UAEX for ext authz; RBAC uses "RBAC" in Istio logs via details)
)

// order is Envoy's print order.
var order = []struct {
	f    Flags
	name string
}{
	{LH, "LH"}, {UH, "UH"}, {UT, "UT"}, {LR, "LR"}, {UR, "UR"}, {UF, "UF"}, {UC, "UC"},
	{UO, "UO"}, {NR, "NR"}, {DI, "DI"}, {FI, "FI"}, {RL, "RL"}, {UAEX, "UAEX"},
	{RLSE, "RLSE"}, {DC, "DC"}, {URX, "URX"}, {SI, "SI"}, {IH, "IH"}, {DPE, "DPE"},
	{UMSDR, "UMSDR"}, {UPE, "UPE"}, {NC, "NC"}, {OM, "OM"}, {DT, "DT"}, {RBAC, "RBAC"},
}

// String prints the flags comma-separated in Envoy's order, "-" when empty.
func (f Flags) String() string {
	if f == 0 {
		return "-"
	}
	var b strings.Builder
	for _, o := range order {
		if f&o.f != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(o.name)
		}
	}
	return b.String()
}

// Error is an error that carries the response flag it implies, so the one
// place that turns errors into responses can set the flag and status.
type Error struct {
	Flag    Flags
	Status  int    // HTTP status to answer with (0: not an HTTP error)
	Details string // %RESPONSE_CODE_DETAILS%, e.g. "no_healthy_upstream"
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Details + ": " + e.Err.Error()
	}
	return e.Details
}

func (e *Error) Unwrap() error { return e.Err }
