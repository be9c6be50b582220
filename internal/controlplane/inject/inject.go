package inject

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"istio.io/api/annotation"
	"istio.io/api/label"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"
)

// Container and volume names, as Istio's template (tools key on them).
const (
	InitContainer  = "istio-init"
	ProxyContainer = "istio-proxy"
	tokenVolume    = "istio-token"
	rootCertVolume = "istiod-ca-cert"
	envoyVolume    = "istio-envoy"
	// ProxyUID is the proxy's user and group; the capture rules exempt it.
	ProxyUID = 1337
	// StatusPort serves the rewritten app probes (/app-health/...) and
	// merged metrics; HealthPort the proxy's own readiness.
	StatusPort = 15020
	HealthPort = 15021
)

// Config is what the injector needs besides the pod.
type Config struct {
	// ProxyImage is the weft-proxy image (hub/weft-proxy:tag).
	ProxyImage string
	// XDSAddress is the control plane's xDS+CA address (istiod.<ns>.svc:15012).
	XDSAddress string
	// Revision is the control plane revision ("" is "default").
	Revision string
	// TrustDomain, ClusterID and MeshID become ISTIO_META_* keys.
	TrustDomain, ClusterID, MeshID string
	// Policy applies to pods that say nothing (default enabled).
	Policy Policy
	// NeverInjectSelector / AlwaysInjectSelector: Istio's injector config.
	NeverInjectSelector, AlwaysInjectSelector []metav1.LabelSelector
	// RegularContainer puts the proxy in Containers instead of a native
	// sidecar (an init container with restartPolicy Always, the default).
	RegularContainer bool
	// DefaultProxyConfig is MeshConfig.defaultConfig (may be nil).
	DefaultProxyConfig *meshv1alpha1.ProxyConfig
}

// Status is the sidecar.istio.io/status annotation, as Istio writes it.
type Status struct {
	InitContainers   []string `json:"initContainers"`
	Containers       []string `json:"containers"`
	Volumes          []string `json:"volumes"`
	ImagePullSecrets []string `json:"imagePullSecrets"`
	Revision         string   `json:"revision"`
}

// Inject returns a copy of pod with the sidecar added. The caller decides
// with Required whether to call it. Invalid annotations are an error that
// names the annotation.
func Inject(c *Config, pod *corev1.Pod) (*corev1.Pod, error) {
	out := pod.DeepCopy()
	ann := out.Annotations
	pc, err := proxyConfig(c, ann)
	if err != nil {
		return nil, err
	}
	res, err := resources(ann)
	if err != nil {
		return nil, err
	}
	initC, err := initContainer(ann)
	if err != nil {
		return nil, err
	}
	initC.Image = c.ProxyImage
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	// Labels Istio adds: telemetry and auto-mTLS key on them.
	out.Labels[label.SecurityTlsMode.Name] = "istio"
	name, rev := canonical(out)
	if _, ok := out.Labels[label.ServiceCanonicalName.Name]; !ok {
		out.Labels[label.ServiceCanonicalName.Name] = name
	}
	if _, ok := out.Labels[label.ServiceCanonicalRevision.Name]; !ok {
		out.Labels[label.ServiceCanonicalRevision.Name] = rev
	}

	appNames := make([]string, 0, len(out.Spec.Containers))
	for _, ac := range out.Spec.Containers {
		appNames = append(appNames, ac.Name)
	}
	probers, err := rewriteProbes(out, ann)
	if err != nil {
		return nil, err
	}
	proxy := proxyContainer(c, out, pc, res, appNames, probers)

	out.Spec.InitContainers = append([]corev1.Container{initC}, out.Spec.InitContainers...)
	st := Status{InitContainers: []string{InitContainer}, Volumes: []string{envoyVolume, tokenVolume, rootCertVolume}, Revision: revisionOrDefault(c.Revision)}
	if c.RegularContainer {
		out.Spec.Containers = append(out.Spec.Containers, proxy)
		st.Containers = []string{ProxyContainer}
	} else {
		waitForAppPorts(out, ann)
		always := corev1.ContainerRestartPolicyAlways
		proxy.RestartPolicy = &always
		drainOnTermination(&proxy)
		// Right after istio-init, before the user's own init containers,
		// so they too run with the proxy up.
		out.Spec.InitContainers = slices.Insert(out.Spec.InitContainers, 1, proxy)
		st.InitContainers = append(st.InitContainers, ProxyContainer)
	}
	out.Spec.Volumes = append(out.Spec.Volumes,
		corev1.Volume{Name: envoyVolume, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
		corev1.Volume{Name: tokenVolume, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
			ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "istio-ca", ExpirationSeconds: ptr(int64(43200)), Path: "istio-token"}}}}}},
		corev1.Volume{Name: rootCertVolume, VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "istio-ca-root-cert"}}}},
	)
	if out.Spec.SecurityContext == nil {
		out.Spec.SecurityContext = &corev1.PodSecurityContext{}
	}
	if out.Spec.SecurityContext.FSGroup == nil {
		// The projected token is readable by the proxy's group.
		out.Spec.SecurityContext.FSGroup = ptr(int64(ProxyUID))
	}
	stJSON, _ := json.Marshal(st)
	out.Annotations[annotation.SidecarStatus.Name] = string(stJSON)
	if len(appNames) > 0 {
		if _, ok := out.Annotations["kubectl.kubernetes.io/default-container"]; !ok {
			out.Annotations["kubectl.kubernetes.io/default-container"] = appNames[0]
		}
		if _, ok := out.Annotations["kubectl.kubernetes.io/default-logs-container"]; !ok {
			out.Annotations["kubectl.kubernetes.io/default-logs-container"] = appNames[0]
		}
	}
	return out, nil
}

// canonical is Istio's canonical service name and revision: the
// service.istio.io labels, else app.kubernetes.io/name / app, else the
// workload name; version labels, else "latest".
func canonical(pod *corev1.Pod) (string, string) {
	l := pod.Labels
	name := first(l["app.kubernetes.io/name"], l["app"], workloadName(pod))
	rev := first(l["app.kubernetes.io/version"], l["version"], "latest")
	return name, rev
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// workloadName: the Deployment behind a ReplicaSet-owned pod (the
// ReplicaSet name minus its pod-template-hash), else the owner, else the
// pod's own name.
func workloadName(pod *corev1.Pod) string {
	for _, o := range pod.OwnerReferences {
		if o.Controller == nil || !*o.Controller {
			continue
		}
		if h := pod.Labels["pod-template-hash"]; o.Kind == "ReplicaSet" && h != "" {
			return strings.TrimSuffix(o.Name, "-"+h)
		}
		return o.Name
	}
	if pod.Name != "" {
		return pod.Name
	}
	return strings.TrimSuffix(pod.GenerateName, "-")
}

// proxyConfig is MeshConfig.defaultConfig overlaid with the pod's
// proxy.istio.io/config annotation (YAML of ProxyConfig), as Istio.
func proxyConfig(c *Config, ann map[string]string) (*meshv1alpha1.ProxyConfig, error) {
	pc := &meshv1alpha1.ProxyConfig{}
	if c.DefaultProxyConfig != nil {
		pc = protoClone(c.DefaultProxyConfig)
	}
	if v, ok := ann[annotation.ProxyConfig.Name]; ok {
		j, err := yaml.YAMLToJSON([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("annotation %s: %w", annotation.ProxyConfig.Name, err)
		}
		over := &meshv1alpha1.ProxyConfig{}
		if err := protojson.Unmarshal(j, over); err != nil {
			return nil, fmt.Errorf("annotation %s: %w", annotation.ProxyConfig.Name, err)
		}
		mergeProxyConfig(pc, over)
	}
	return pc, nil
}

func protoClone(p *meshv1alpha1.ProxyConfig) *meshv1alpha1.ProxyConfig {
	b, _ := protojson.Marshal(p)
	out := &meshv1alpha1.ProxyConfig{}
	_ = protojson.Unmarshal(b, out)
	return out
}

// mergeProxyConfig: fields set in over replace those of pc (JSON merge of
// top-level fields, as Istio's annotation overlay).
func mergeProxyConfig(pc, over *meshv1alpha1.ProxyConfig) {
	a, _ := protojson.Marshal(pc)
	b, _ := protojson.Marshal(over)
	var ma, mb map[string]json.RawMessage
	_ = json.Unmarshal(a, &ma)
	_ = json.Unmarshal(b, &mb)
	if ma == nil {
		ma = map[string]json.RawMessage{}
	}
	for k, v := range mb {
		ma[k] = v
	}
	m, _ := json.Marshal(ma)
	_ = protojson.Unmarshal(m, pc)
}

// resources: Istio's defaults (100m/128Mi requests, 2 CPU/1Gi limits)
// with the sidecar.istio.io/proxy{CPU,Memory}[Limit] annotations.
func resources(ann map[string]string) (corev1.ResourceRequirements, error) {
	r := corev1.ResourceRequirements{
		Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
		Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
	}
	for _, a := range []struct {
		name string
		list corev1.ResourceList
		res  corev1.ResourceName
	}{
		{annotation.SidecarProxyCPU.Name, r.Requests, corev1.ResourceCPU},
		{annotation.SidecarProxyMemory.Name, r.Requests, corev1.ResourceMemory},
		{annotation.SidecarProxyCPULimit.Name, r.Limits, corev1.ResourceCPU},
		{annotation.SidecarProxyMemoryLimit.Name, r.Limits, corev1.ResourceMemory},
	} {
		v, ok := ann[a.name]
		if !ok {
			continue
		}
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return r, fmt.Errorf("annotation %s: %q is not a quantity", a.name, v)
		}
		a.list[a.res] = q
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if req, lim := r.Requests[res], r.Limits[res]; req.Cmp(lim) > 0 {
			return r, fmt.Errorf("sidecar %s request %s is above its limit %s", res, req.String(), lim.String())
		}
	}
	return r, nil
}

// initContainer installs the capture rules with `weft-proxy iptables`,
// the traffic.sidecar.istio.io annotations mapped onto its flags.
func initContainer(ann map[string]string) (corev1.Container, error) {
	args := []string{"iptables", "--proxy-uid=" + strconv.Itoa(ProxyUID), "--outbound-port=15001", "--inbound-port=15006"}
	excludeIn := "15090,15021,15020"
	type flag struct {
		name string
		def  string
		ann  string
		ips  bool
	}
	for _, f := range []flag{
		{"include-outbound-ip-ranges", "*", annotation.SidecarTrafficIncludeOutboundIPRanges.Name, true},
		{"exclude-outbound-ip-ranges", "", annotation.SidecarTrafficExcludeOutboundIPRanges.Name, true},
		{"include-inbound-ports", "*", annotation.SidecarTrafficIncludeInboundPorts.Name, false},
		{"exclude-inbound-ports", "", annotation.SidecarTrafficExcludeInboundPorts.Name, false},
		{"exclude-outbound-ports", "", annotation.SidecarTrafficExcludeOutboundPorts.Name, false},
	} {
		v, ok := ann[f.ann]
		if !ok {
			v = f.def
		}
		if err := checkList(v, f.ips); err != nil {
			return corev1.Container{}, fmt.Errorf("annotation %s: %w", f.ann, err)
		}
		if f.name == "exclude-inbound-ports" {
			// The proxy's own ports are never captured.
			v = strings.Trim(excludeIn+","+v, ",")
		}
		args = append(args, "--"+f.name+"="+v)
	}
	return corev1.Container{
		Name:    InitContainer,
		Command: []string{"weft-proxy"},
		Args:    args,
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m"), corev1.ResourceMemory: resource.MustParse("10Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2"), corev1.ResourceMemory: resource.MustParse("1Gi")},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			Privileged:               ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			RunAsUser:                ptr(int64(0)),
			RunAsGroup:               ptr(int64(0)),
			RunAsNonRoot:             ptr(false),
			Capabilities:             &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN", "NET_RAW"}, Drop: []corev1.Capability{"ALL"}},
		},
	}, nil
}

// checkList validates "*", "" or a comma list of ports / CIDRs.
func checkList(v string, ips bool) error {
	if v == "*" || v == "" {
		return nil
	}
	for _, s := range strings.Split(v, ",") {
		s = strings.TrimSpace(s)
		if ips {
			if _, err := netip.ParsePrefix(s); err != nil {
				return fmt.Errorf("%q is not a CIDR", s)
			}
			continue
		}
		if p, err := strconv.Atoi(s); err != nil || p < 1 || p > 65535 {
			return fmt.Errorf("%q is not a port", s)
		}
	}
	return nil
}

func proxyContainer(c *Config, pod *corev1.Pod, pc *meshv1alpha1.ProxyConfig, res corev1.ResourceRequirements, apps []string, probers string) corev1.Container {
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	var ports []map[string]any
	for _, ac := range pod.Spec.Containers {
		for _, p := range ac.Ports {
			proto := p.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP // the API server's default: kube-inject and the webhook agree
			}
			m := map[string]any{"containerPort": p.ContainerPort, "protocol": string(proto)}
			if p.Name != "" {
				m["name"] = p.Name
			}
			ports = append(ports, m)
		}
	}
	portsJSON := "[]"
	if len(ports) > 0 {
		b, _ := json.Marshal(ports)
		portsJSON = string(b)
	}
	var lbls []string
	for k, v := range pod.Labels {
		lbls = append(lbls, k+"="+v)
	}
	slices.Sort(lbls)
	pcJSON, _ := protojson.Marshal(pc)
	drain := 5 * time.Second
	if d := pc.GetTerminationDrainDuration(); d != nil {
		drain = d.AsDuration()
	}
	env := []corev1.EnvVar{
		{Name: "WEFT_XDS", Value: c.XDSAddress},
		{Name: "WEFT_TOKEN_FILE", Value: "/var/run/secrets/tokens/istio-token"},
		{Name: "WEFT_ROOT_CERT", Value: "/var/run/secrets/istio/root-cert.pem"},
		{Name: "WEFT_CAPTURE", Value: "true"},
		{Name: "WEFT_NAME", ValueFrom: field("metadata.name")},
		{Name: "WEFT_NAMESPACE", ValueFrom: field("metadata.namespace")},
		{Name: "WEFT_SERVICE_ACCOUNT", ValueFrom: field("spec.serviceAccountName")},
		{Name: "WEFT_IP", ValueFrom: field("status.podIP")},
		{Name: "WEFT_LABELS", Value: strings.Join(lbls, ",")},
		{Name: "WEFT_DRAIN_DURATION", Value: drain.String()},
		{Name: "WEFT_BIND_ALL", Value: "true"},
		// Istio's names, for tools and apps that read them.
		{Name: "POD_NAME", ValueFrom: field("metadata.name")},
		{Name: "POD_NAMESPACE", ValueFrom: field("metadata.namespace")},
		{Name: "INSTANCE_IP", ValueFrom: field("status.podIP")},
		{Name: "SERVICE_ACCOUNT", ValueFrom: field("spec.serviceAccountName")},
		{Name: "HOST_IP", ValueFrom: field("status.hostIP")},
		{Name: "PROXY_CONFIG", Value: string(pcJSON)},
		{Name: "ISTIO_META_POD_PORTS", Value: portsJSON},
		{Name: "ISTIO_META_APP_CONTAINERS", Value: strings.Join(apps, ",")},
		{Name: "ISTIO_META_CLUSTER_ID", Value: first(c.ClusterID, "Kubernetes")},
		{Name: "ISTIO_META_NODE_NAME", ValueFrom: field("spec.nodeName")},
		{Name: "ISTIO_META_INTERCEPTION_MODE", Value: "REDIRECT"},
		{Name: "ISTIO_META_WORKLOAD_NAME", Value: workloadName(pod)},
		{Name: "ISTIO_META_MESH_ID", Value: first(c.MeshID, c.TrustDomain, "cluster.local")},
		{Name: "TRUST_DOMAIN", Value: first(c.TrustDomain, "cluster.local")},
	}
	if probers != "" {
		env = append(env, corev1.EnvVar{Name: "ISTIO_KUBE_APP_PROBERS", Value: probers})
	}
	env = append(env, proxyMetadataEnv(pc)...)
	return corev1.Container{
		Name:  ProxyContainer,
		Image: c.ProxyImage,
		Args:  []string{"sidecar"},
		Env:   env,
		Ports: []corev1.ContainerPort{{Name: "http-envoy-prom", ContainerPort: 15090, Protocol: corev1.ProtocolTCP}},
		// Native sidecar: the app starts only after this probe passes,
		// which is what holdApplicationUntilProxyStarts asked for.
		StartupProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(HealthPort)}},
			PeriodSeconds: 1, TimeoutSeconds: 3, FailureThreshold: 600},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(HealthPort)}},
			PeriodSeconds: 15, TimeoutSeconds: 3, FailureThreshold: 4},
		Resources: res,
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: ptr(false),
			Privileged:               ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			RunAsUser:                ptr(int64(ProxyUID)),
			RunAsGroup:               ptr(int64(ProxyUID)),
			RunAsNonRoot:             ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: envoyVolume, MountPath: "/etc/istio/proxy"},
			{Name: tokenVolume, MountPath: "/var/run/secrets/tokens", ReadOnly: true},
			{Name: rootCertVolume, MountPath: "/var/run/secrets/istio", ReadOnly: true},
		},
	}
}

func ptr[T any](v T) *T { return &v }
