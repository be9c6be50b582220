package bootstrap

import (
	"context"
	"net"
	"strings"
)

// Resolver answers overridden names first and falls back to the system
// resolver (--dns-override, for demos and tests without internet).
type Resolver struct {
	Override map[string]string
	Fallback interface {
		LookupHost(ctx context.Context, host string) ([]string, error)
	}
}

// LookupHost implements cluster.Resolver.
func (r *Resolver) LookupHost(ctx context.Context, host string) ([]string, error) {
	if ip, ok := r.Override[strings.ToLower(strings.TrimSuffix(host, "."))]; ok {
		return []string{ip}, nil
	}
	if r.Fallback == nil {
		return net.DefaultResolver.LookupHost(ctx, host)
	}
	return r.Fallback.LookupHost(ctx, host)
}
