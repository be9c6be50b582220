// Package rbac is Envoy's role-based access control for weft-proxy: the
// envoy.filters.http.rbac HTTP filter and the envoy.filters.network.rbac
// network filter. Both compile an envoy.config.rbac.v3.RBAC (policies of
// Permission and Principal trees) once per config into matchers that
// evaluate a request or connection without allocating, and NACK any field
// they do not implement, naming it.
//
// Semantics follow Envoy's RBAC engine: a policy matches when one of its
// permissions and one of its principals match; an ALLOW engine allows a
// request some policy matches, a DENY engine denies it, a LOG engine only
// reports. Shadow rules are evaluated and counted but never enforced.
package rbac

import (
	"crypto/x509"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"sync/atomic"

	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// Action is what an engine does with a matching policy.
type Action uint8

const (
	Allow Action = iota
	Deny
	Log
)

// Engine is one compiled RBAC: immutable and safe for concurrent use.
type Engine struct {
	action   Action
	policies []policy // sorted by name, as Envoy's map iterates
}

type policy struct {
	name  string
	perms []perm
	ids   []principal
}

// Input is what an engine evaluates: an HTTP request (Req set) or a
// connection (Req nil). The caller owns it; Eval does not keep it.
type Input struct {
	Req *http.Request
	// Path is the request path as forwarded (after normalization), without
	// the query: what url_path matches.
	Path string
	Conn *downstream.Info
	// RemoteIP is the trusted client address (HCM's remote address after
	// x-forwarded-for handling); invalid means the connection's peer.
	RemoteIP netip.Addr
	Meta     *filter.Metadata
	// Cache memoizes peer principal names (optional).
	Cache *PeerCache

	principal     string
	authenticated bool
	principalDone bool
}

// peer returns the verified peer's URI SAN (the SPIFFE ID) and whether the
// connection is authenticated (mutual TLS terminated here).
func (in *Input) peer() (string, bool) {
	if !in.principalDone {
		in.principalDone = true
		if c := in.Conn; c != nil && c.TLS != nil && len(c.TLS.VerifiedChains) > 0 && len(c.TLS.PeerCertificates) > 0 {
			in.authenticated = true
			in.principal = in.Cache.principalOf(c.TLS.PeerCertificates[0])
		}
	}
	return in.principal, in.authenticated
}

// PeerCache remembers the principal names of recently seen peer
// certificates (direct-mapped by serial number), so requests on a
// kept-alive mTLS connection do not format the URI SAN each time. Each
// filter owns one; safe for concurrent use; a nil cache caches nothing.
type PeerCache [256]atomic.Pointer[principalEntry]

type principalEntry struct {
	cert *x509.Certificate
	name string
}

// principalOf is Envoy's principal name: the first URI SAN, else the first
// DNS SAN, else the subject.
func (pc *PeerCache) principalOf(cert *x509.Certificate) string {
	slot := 0
	if cert.SerialNumber != nil {
		if w := cert.SerialNumber.Bits(); len(w) > 0 {
			slot = int(uint(w[0]) & 255)
		}
	}
	if pc != nil {
		if e := pc[slot].Load(); e != nil && e.cert == cert {
			return e.name
		}
	}
	var name string
	switch {
	case len(cert.URIs) > 0:
		name = cert.URIs[0].String()
	case len(cert.DNSNames) > 0:
		name = cert.DNSNames[0]
	default:
		name = cert.Subject.String()
	}
	if pc != nil {
		pc[slot].Store(&principalEntry{cert, name})
	}
	return name
}

func (in *Input) remote() netip.Addr {
	if in.RemoteIP.IsValid() {
		return in.RemoteIP
	}
	return in.direct()
}

func (in *Input) direct() netip.Addr {
	if in.Conn == nil {
		return netip.Addr{}
	}
	return in.Conn.Remote.Addr().Unmap()
}

func (in *Input) dest() netip.AddrPort {
	if in.Conn == nil {
		return netip.AddrPort{}
	}
	if in.Conn.OriginalDst.IsValid() {
		return in.Conn.OriginalDst
	}
	return in.Conn.Local
}

// Compile compiles an RBAC; path names it in errors. A nil config yields a
// nil engine (no rules: the filter does not enforce).
func Compile(cfg *rbacv3.RBAC, path string) (*Engine, error) {
	if cfg == nil {
		return nil, nil
	}
	if err := xdsfield.Check(cfg, path, "action", "policies"); err != nil {
		return nil, err
	}
	e := &Engine{}
	switch cfg.GetAction() {
	case rbacv3.RBAC_ALLOW:
		e.action = Allow
	case rbacv3.RBAC_DENY:
		e.action = Deny
	case rbacv3.RBAC_LOG:
		e.action = Log
	default:
		return nil, fmt.Errorf("%s.action: %v not supported by weft-proxy", path, cfg.GetAction())
	}
	names := make([]string, 0, len(cfg.GetPolicies()))
	for n := range cfg.GetPolicies() {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := cfg.GetPolicies()[n]
		pp := fmt.Sprintf("%s.policies[%q]", path, n)
		if err := xdsfield.Check(p, pp, "permissions", "principals"); err != nil {
			return nil, err
		}
		if len(p.GetPermissions()) == 0 || len(p.GetPrincipals()) == 0 {
			return nil, fmt.Errorf("%s: permissions and principals must not be empty", pp)
		}
		pol := policy{name: n}
		for i, pm := range p.GetPermissions() {
			c, err := compilePerm(pm, fmt.Sprintf("%s.permissions[%d]", pp, i), 0)
			if err != nil {
				return nil, err
			}
			pol.perms = append(pol.perms, c)
		}
		for i, pr := range p.GetPrincipals() {
			c, err := compilePrincipal(pr, fmt.Sprintf("%s.principals[%d]", pp, i), 0)
			if err != nil {
				return nil, err
			}
			pol.ids = append(pol.ids, c)
		}
		e.policies = append(e.policies, pol)
	}
	return e, nil
}

// Action returns the engine's action.
func (e *Engine) Action() Action { return e.action }

// Len is the number of policies.
func (e *Engine) Len() int { return len(e.policies) }

// Eval reports whether the engine allows in and the name of the policy
// that matched ("" when none did). A LOG engine always allows.
func (e *Engine) Eval(in *Input) (allowed bool, policy string) {
	for i := range e.policies {
		p := &e.policies[i]
		if p.match(in) {
			return e.action != Deny, p.name
		}
	}
	return e.action != Allow, ""
}

func (p *policy) match(in *Input) bool {
	ok := false
	for _, pm := range p.perms {
		if pm.match(in) {
			ok = true
			break
		}
	}
	if !ok {
		return false
	}
	for _, id := range p.ids {
		if id.match(in) {
			return true
		}
	}
	return false
}

func errorf(format string, a ...any) error { return fmt.Errorf(format, a...) }
