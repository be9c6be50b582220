package store

import (
	"context"

	"github.com/weftmesh/weft/internal/config"
)

// Source is where the control plane's configuration and registry objects
// come from: a watched directory (Dir) or the Kubernetes API server
// (controlplane/kube). Both hand out the same config.Resources, so what is
// built from them does not depend on the source.
type Source interface {
	// Resources returns the served resources; they are shared, read only.
	Resources() []*config.Resource
	// Watch follows changes until ctx ends (the source's OnChange fires
	// on each).
	Watch(ctx context.Context) error
}

var _ Source = (*Dir)(nil)
