package install

import (
	"bytes"
	_ "embed"
	"fmt"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/inject"
)

// CRDs is istio.io/api's kubernetes/customresourcedefinitions.gen.yaml,
// byte for byte (a test compares it with the module's copy).
//
//go:embed crds/customresourcedefinitions.gen.yaml
var CRDs []byte

// Well-known names.
const (
	ControlPlane = "istiod"
	Gateway      = "istio-ingressgateway"
	managedBy    = "weft"
)

// Render returns the installation as multi-document YAML: the CRDs first,
// then the namespace, then everything in it.
func Render(v Values) ([]byte, error) {
	objs, err := Objects(v)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Write(CRDs)
	for _, o := range objs {
		y, err := sigsyaml.Marshal(o)
		if err != nil {
			return nil, err
		}
		b.WriteString("---\n")
		b.Write(y)
	}
	return b.Bytes(), nil
}

// Objects are the installation's objects other than the CRDs, in apply
// order.
func Objects(v Values) ([]runtime.Object, error) {
	injData, err := inject.ConfigMapData(v.Hub, v.Tag, v.Revision)
	if err != nil {
		return nil, err
	}
	mesh, err := meshConfigYAML(v)
	if err != nil {
		return nil, err
	}
	ns := v.Namespace
	labels := func(app string) map[string]string {
		l := map[string]string{"app": app, "app.kubernetes.io/managed-by": managedBy}
		if v.Revision != "" {
			l["istio.io/rev"] = v.Revision
		}
		return l
	}
	meta := func(name, app string) metav1.ObjectMeta {
		return metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels(app)}
	}
	cp := v.name(ControlPlane)
	cpLabels := labels(ControlPlane)
	cpSelector := map[string]string{"app": ControlPlane}
	if v.Revision != "" {
		cpSelector["istio.io/rev"] = v.Revision
	}

	out := []runtime.Object{
		&corev1.Namespace{TypeMeta: tm("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"app.kubernetes.io/managed-by": managedBy}}},
		&corev1.ServiceAccount{TypeMeta: tm("v1", "ServiceAccount"), ObjectMeta: meta(cp, ControlPlane)},
		// The control plane reads the mesh, writes status, reviews tokens;
		// nothing else cluster-wide.
		&rbacv1.ClusterRole{TypeMeta: tm("rbac.authorization.k8s.io/v1", "ClusterRole"),
			ObjectMeta: metav1.ObjectMeta{Name: v.name("weft-istiod-" + ns), Labels: labels(ControlPlane)},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{"networking.istio.io", "security.istio.io", "telemetry.istio.io"}, Resources: []string{"*"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"networking.istio.io", "security.istio.io", "telemetry.istio.io"}, Resources: []string{"*/status"}, Verbs: []string{"get", "update", "patch"}},
				{APIGroups: []string{""}, Resources: []string{"services", "pods", "namespaces", "nodes"}, Verbs: []string{"get", "list", "watch"}},
				{APIGroups: []string{"discovery.k8s.io"}, Resources: []string{"endpointslices"}, Verbs: []string{"get", "list", "watch"}},
				// Gateway credentials: watched by name only (credentialName).
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch"}},
				// istio-ca-root-cert in every namespace.
				{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "list", "watch", "create", "update"}},
				{APIGroups: []string{"authentication.k8s.io"}, Resources: []string{"tokenreviews"}, Verbs: []string{"create"}},
				// The injection webhook's caBundle, kept current by the leader.
				{APIGroups: []string{"admissionregistration.k8s.io"}, Resources: []string{"mutatingwebhookconfigurations"}, ResourceNames: []string{inject.WebhookName(v.Revision)}, Verbs: []string{"get", "update"}},
			}},
		&rbacv1.ClusterRoleBinding{TypeMeta: tm("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
			ObjectMeta: metav1.ObjectMeta{Name: v.name("weft-istiod-" + ns), Labels: labels(ControlPlane)},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: v.name("weft-istiod-" + ns)},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: cp, Namespace: ns}}},
		// In its own namespace: the CA root Secret and the leader Lease.
		&rbacv1.Role{TypeMeta: tm("rbac.authorization.k8s.io/v1", "Role"), ObjectMeta: meta(cp, ControlPlane),
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "update"}},
				{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "create", "update"}},
			}},
		&rbacv1.RoleBinding{TypeMeta: tm("rbac.authorization.k8s.io/v1", "RoleBinding"), ObjectMeta: meta(cp, ControlPlane),
			RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: cp},
			Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: cp, Namespace: ns}}},
		&corev1.ConfigMap{TypeMeta: tm("v1", "ConfigMap"), ObjectMeta: meta(config.MeshConfigMapName, ControlPlane), // revisions share the mesh config
			Data: map[string]string{"mesh": mesh}},
		// The injector's settings (policy, selectors, image values), as
		// Istio's istio-sidecar-injector; the control plane follows edits.
		&corev1.ConfigMap{TypeMeta: tm("v1", "ConfigMap"), ObjectMeta: meta(inject.ConfigMapName(v.Revision), ControlPlane), Data: injData},
		controlPlaneDeployment(v, cp, cpLabels, cpSelector),
		&policyv1.PodDisruptionBudget{TypeMeta: tm("policy/v1", "PodDisruptionBudget"), ObjectMeta: meta(cp, ControlPlane),
			Spec: policyv1.PodDisruptionBudgetSpec{MinAvailable: ptr(intstr.FromInt32(1)), Selector: &metav1.LabelSelector{MatchLabels: cpSelector}}},
		controlPlaneService(v, cp, cpLabels, cpSelector),
	}
	// Sidecar injection: the API server calls the control plane Service;
	// the leader fills in caBundle from the mesh CA.
	out = append(out, inject.Webhooks(v.Revision, admissionregistrationv1.WebhookClientConfig{
		Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: cp, Path: ptr("/inject"), Port: ptr(int32(443))}}))
	if v.Gateway {
		out = append(out, gatewayObjects(v, cp)...)
	}
	return out, nil
}

func controlPlaneDeployment(v Values, name string, labels, selector map[string]string) *appsv1.Deployment {
	svc := fmt.Sprintf("%s.%s.svc", name, v.Namespace)
	args := []string{"control-plane", "--system-namespace=" + v.Namespace,
		"--secure-address=0.0.0.0:15012", "--serving-hosts=" + svc + "," + svc + ".cluster.local",
		"--monitoring-address=0.0.0.0:15014", "--log-level=info",
		"--webhook-address=0.0.0.0:15017", "--proxy-hub=" + v.Hub, "--proxy-tag=" + v.Tag}
	if v.Revision != "" {
		args = append(args, "--revision="+v.Revision)
	}
	if v.PlaintextXDS {
		args = append(args, "--xds-address=0.0.0.0:15010")
	}
	probe := &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(15014)}},
		PeriodSeconds: 5, TimeoutSeconds: 2}
	c := corev1.Container{
		Name:  "discovery",
		Image: v.Hub + "/weft:" + v.Tag,
		Args:  args,
		Ports: []corev1.ContainerPort{
			{Name: "grpc-xds", ContainerPort: 15012}, {Name: "http-monitoring", ContainerPort: 15014}, {Name: "https-webhook", ContainerPort: 15017},
		},
		Env: []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "POD_NAMESPACE", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.namespace"}}},
		},
		ReadinessProbe: probe,
		LivenessProbe:  &corev1.Probe{ProbeHandler: probe.ProbeHandler, PeriodSeconds: 10, TimeoutSeconds: 2, FailureThreshold: 6, InitialDelaySeconds: 5},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("200m"), corev1.ResourceMemory: resource.MustParse("256Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")},
		},
		SecurityContext: restricted(),
		// The root filesystem is read-only; the CA's files (the root key
		// among them) go to a memory-backed /tmp of the pod's own.
		VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
	}
	if v.PlaintextXDS {
		c.Ports = append(c.Ports, corev1.ContainerPort{Name: "grpc-xds-plain", ContainerPort: 15010})
	}
	return &appsv1.Deployment{
		TypeMeta:   tm("apps/v1", "Deployment"),
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v.Namespace, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr(int32(v.Replicas)),
			Selector: &metav1.LabelSelector{MatchLabels: selector},
			Strategy: appsv1.DeploymentStrategy{Type: appsv1.RollingUpdateDeploymentStrategyType, RollingUpdate: &appsv1.RollingUpdateDeployment{
				MaxUnavailable: ptr(intstr.FromInt32(0)), MaxSurge: ptr(intstr.FromInt32(1))}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: name,
					Containers:         []corev1.Container{c},
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{
						EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}},
					SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}},
					// Spread replicas so one node going away leaves one serving.
					TopologySpreadConstraints: []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "kubernetes.io/hostname",
						WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: &metav1.LabelSelector{MatchLabels: selector}}},
				},
			},
		},
	}
}

func controlPlaneService(v Values, name string, labels, selector map[string]string) *corev1.Service {
	ports := []corev1.ServicePort{
		{Name: "grpc-xds", Port: 15012, TargetPort: intstr.FromInt32(15012)},
		{Name: "http-monitoring", Port: 15014, TargetPort: intstr.FromInt32(15014)},
		{Name: "https-webhook", Port: 443, TargetPort: intstr.FromInt32(15017)},
	}
	if v.PlaintextXDS {
		ports = append(ports, corev1.ServicePort{Name: "grpc-xds-plain", Port: 15010, TargetPort: intstr.FromInt32(15010)})
	}
	return &corev1.Service{TypeMeta: tm("v1", "Service"), ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v.Namespace, Labels: labels},
		Spec: corev1.ServiceSpec{Selector: selector, Ports: ports}}
}

func gatewayObjects(v Values, cp string) []runtime.Object {
	name := v.name(Gateway)
	labels := map[string]string{"app": Gateway, "istio": "ingressgateway", "app.kubernetes.io/managed-by": managedBy}
	selector := map[string]string{"app": Gateway, "istio": "ingressgateway"}
	if v.Revision != "" {
		labels["istio.io/rev"] = v.Revision
		selector["istio.io/rev"] = v.Revision
	}
	var sel []string
	for k, val := range selector {
		sel = append(sel, k+"="+val)
	}
	slices.Sort(sel)
	field := func(path string) *corev1.EnvVarSource {
		return &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}
	}
	c := corev1.Container{
		Name:  "istio-proxy",
		Image: v.Hub + "/weft-proxy:" + v.Tag,
		Args:  []string{"router", "--bind-all=true"},
		Env: []corev1.EnvVar{
			{Name: "WEFT_XDS", Value: fmt.Sprintf("%s.%s.svc:15012", cp, v.Namespace)},
			// The pod's projected token (audience istio-ca) gets the first
			// certificate; the CA checks it with TokenReview.
			{Name: "WEFT_TOKEN_FILE", Value: "/var/run/secrets/tokens/istio-token"},
			{Name: "WEFT_ROOT_CERT", Value: "/var/run/secrets/istio/root-cert.pem"},
			{Name: "WEFT_NAME", ValueFrom: field("metadata.name")},
			{Name: "WEFT_NAMESPACE", ValueFrom: field("metadata.namespace")},
			{Name: "WEFT_SERVICE_ACCOUNT", ValueFrom: field("spec.serviceAccountName")},
			{Name: "WEFT_IP", ValueFrom: field("status.podIP")},
			{Name: "WEFT_LABELS", Value: strings.Join(sel, ",")},
		},
		Ports: []corev1.ContainerPort{
			{Name: "http2", ContainerPort: 8080}, {Name: "https", ContainerPort: 8443}, {Name: "status-port", ContainerPort: 15021}, {Name: "http-envoy-prom", ContainerPort: 15090},
		},
		ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz/ready", Port: intstr.FromInt32(15021)}}, PeriodSeconds: 2},
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
			Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("1Gi")},
		},
		SecurityContext: restricted(),
		VolumeMounts: []corev1.VolumeMount{
			{Name: "istio-token", MountPath: "/var/run/secrets/tokens", ReadOnly: true},
			{Name: "istiod-ca-cert", MountPath: "/var/run/secrets/istio", ReadOnly: true},
		},
	}
	if v.PlaintextXDS {
		c.Env[0].Value = fmt.Sprintf("%s.%s.svc:15010", cp, v.Namespace)
		c.Env = append(c.Env[:1], c.Env[3:]...)
		c.VolumeMounts = nil
	}
	volumes := []corev1.Volume{
		{Name: "istio-token", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{
			ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "istio-ca", ExpirationSeconds: ptr(int64(43200)), Path: "istio-token"}}}}}},
		{Name: "istiod-ca-cert", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "istio-ca-root-cert"}}}},
	}
	if v.PlaintextXDS {
		volumes = nil
	}
	return []runtime.Object{
		&corev1.ServiceAccount{TypeMeta: tm("v1", "ServiceAccount"), ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v.Namespace, Labels: labels}},
		&appsv1.Deployment{
			TypeMeta:   tm("apps/v1", "Deployment"),
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v.Namespace, Labels: labels},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr(int32(1)),
				Selector: &metav1.LabelSelector{MatchLabels: selector},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{ServiceAccountName: name, Containers: []corev1.Container{c}, Volumes: volumes,
						SecurityContext: &corev1.PodSecurityContext{RunAsNonRoot: ptr(true), SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}},
				},
			},
		},
		&corev1.Service{TypeMeta: tm("v1", "Service"), ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: v.Namespace, Labels: labels},
			Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Selector: selector, Ports: []corev1.ServicePort{
				{Name: "status-port", Port: 15021, TargetPort: intstr.FromInt32(15021)},
				{Name: "http2", Port: 80, TargetPort: intstr.FromInt32(8080)},
				{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8443)},
			}}},
	}
}

// meshConfigYAML renders the "istio" ConfigMap's data.mesh and checks it
// with the same strict loader the control plane uses.
func meshConfigYAML(v Values) (string, error) {
	root := map[string]any{"trustDomain": v.TrustDomain}
	keys := make([]string, 0, len(v.MeshConfig))
	for k := range v.MeshConfig {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		var val any
		if err := yaml.Unmarshal([]byte(v.MeshConfig[k]), &val); err != nil {
			return "", fmt.Errorf("--set meshConfig.%s: %w", k, err)
		}
		m := root
		parts := strings.Split(k, ".")
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = val
	}
	b, err := yaml.Marshal(root)
	if err != nil {
		return "", err
	}
	cm := &corev1.ConfigMap{TypeMeta: tm("v1", "ConfigMap"), ObjectMeta: metav1.ObjectMeta{Name: config.MeshConfigMapName, Namespace: v.Namespace},
		Data: map[string]string{"mesh": string(b)}}
	j, err := sigsyaml.Marshal(cm)
	if err != nil {
		return "", err
	}
	if _, err := config.LoadReader("meshConfig (--set)", bytes.NewReader(j), config.Options{}); err != nil {
		return "", err
	}
	return string(b), nil
}

func restricted() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr(false),
		ReadOnlyRootFilesystem:   ptr(true),
		RunAsNonRoot:             ptr(true),
		RunAsUser:                ptr(int64(1337)),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

func tm(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func ptr[T any](v T) *T { return &v }
