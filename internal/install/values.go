// Package install renders and applies Weft's Kubernetes installation, as
// istioctl does for Istio: Istio's CRDs (unchanged from istio.io/api), the
// system namespace, service accounts and least-privilege RBAC, the control
// plane (Deployment, PodDisruptionBudget, Service, the "istio" MeshConfig
// ConfigMap) and the ingress gateway. The output is plain YAML that
// `kubectl apply` accepts; Apply uses server-side apply, so re-applying is
// idempotent.
package install

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/internal/version"
)

// Values are the knobs of an installation (`--set key=value`).
type Values struct {
	Namespace   string // system namespace (istio-system)
	Revision    string // "" or a revision name: names get a -<revision> suffix
	Hub, Tag    string // images are <hub>/weft:<tag> and <hub>/weft-proxy:<tag>
	TrustDomain string
	// MeshConfig holds meshConfig.* values as YAML scalars by dotted path.
	MeshConfig map[string]string
	Gateway    bool // the ingress gateway
	// PlaintextXDS exposes 15010 (plaintext xDS) on the Service and binds
	// it on all addresses; off by default, as Istio.
	PlaintextXDS bool
	Replicas     int
}

// DefaultValues are used for keys no --set names. The tag is this binary's
// own version, as istioctl's is: never "latest", which makes the kubelet
// pull on every start (and fail where there is no registry), and always
// the images that match the CLI (`make images` tags them with it too).
func DefaultValues() Values {
	return Values{Namespace: "istio-system", Hub: "ghcr.io/weftmesh", Tag: DefaultTag(), TrustDomain: "cluster.local",
		MeshConfig: map[string]string{}, Gateway: true, Replicas: 2}
}

// DefaultTag is the image tag installs use unless --set tag= says
// otherwise: the binary's version ("dev" for a plain go build).
func DefaultTag() string { return version.TagFor(version.Version) }

var (
	dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$`)
	meshKey  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z][A-Za-z0-9]*)*$`)
)

// Set applies one key=value. Keys follow istioctl's where they exist.
func (v *Values) Set(kv string) error {
	k, val, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("--set %q: want key=value", kv)
	}
	k = strings.TrimSpace(k)
	bad := func(why string) error { return fmt.Errorf("--set %s: %s", k, why) }
	boolean := func() (bool, error) {
		b, err := strconv.ParseBool(val)
		if err != nil {
			return false, bad(fmt.Sprintf("%q is not true or false", val))
		}
		return b, nil
	}
	var err error
	switch {
	case k == "revision":
		if val != "" && !dnsLabel.MatchString(val) {
			return bad("a revision is a DNS label")
		}
		v.Revision = val
	case k == "hub":
		v.Hub = strings.TrimRight(val, "/")
	case k == "tag":
		if !version.ValidTag(val) {
			return bad(fmt.Sprintf("%q is not an image tag", val))
		}
		v.Tag = val
	case k == "namespace" || k == "values.global.istioNamespace":
		if !dnsLabel.MatchString(val) {
			return bad("a namespace is a DNS label")
		}
		v.Namespace = val
	case k == "trustDomain" || k == "meshConfig.trustDomain":
		if val == "" || strings.ContainsAny(val, "/ ") {
			return bad("not a trust domain")
		}
		v.TrustDomain = val
	case k == "components.ingressGateways.enabled" || k == "gateway.enabled" || k == "gateway":
		v.Gateway, err = boolean()
	case k == "pilot.plaintextXDS" || k == "plaintextXDS":
		v.PlaintextXDS, err = boolean()
	case k == "pilot.replicaCount" || k == "replicas":
		n, perr := strconv.Atoi(val)
		if perr != nil || n < 1 || n > 100 {
			return bad("replicas is 1..100")
		}
		v.Replicas = n
	case strings.HasPrefix(k, "meshConfig."):
		path := strings.TrimPrefix(k, "meshConfig.")
		if !meshKey.MatchString(path) {
			return bad("not a meshConfig field path")
		}
		v.MeshConfig[path] = val
	default:
		return fmt.Errorf("--set %s: unknown key (known: revision, hub, tag, namespace, trustDomain, meshConfig.<field>, gateway.enabled, pilot.plaintextXDS, pilot.replicaCount)", k)
	}
	return err
}

// name adds the revision suffix, as Istio names revisioned objects.
func (v *Values) name(base string) string {
	if v.Revision == "" {
		return base
	}
	return base + "-" + v.Revision
}
