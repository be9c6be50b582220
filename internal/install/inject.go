package install

import (
	"fmt"

	"github.com/weftmesh/weft/internal/controlplane/inject"
)

// InjectConfig is the sidecar injector's config for this installation:
// the webhook and `weft kube-inject` both build theirs here, so they
// inject the same sidecar.
func (v Values) InjectConfig() *inject.Config {
	return &inject.Config{
		ProxyImage:  v.Hub + "/weft-proxy:" + v.Tag,
		XDSAddress:  fmt.Sprintf("%s.%s.svc:15012", v.name(ControlPlane), v.Namespace),
		Revision:    v.Revision,
		TrustDomain: v.TrustDomain,
		Policy:      inject.PolicyEnabled,
	}
}
