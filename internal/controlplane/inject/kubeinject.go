package inject

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// Documents is `weft kube-inject`: it reads YAML documents from in and
// writes them to out with the sidecar injected into every Pod and pod
// template (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob,
// ReplicationController), with the webhook's rules and result. Other
// documents pass through unchanged. Namespace labels are not consulted
// (as istioctl kube-inject): the pod's own opt-out and the selectors are.
func Documents(c *Config, in io.Reader, out io.Writer) error {
	r := utilyaml.NewYAMLReader(bufio.NewReader(in))
	firstDoc := true
	for n := 1; ; n++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("document %d: %w", n, err)
		}
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		res, err := injectDoc(c, doc)
		if err != nil {
			return fmt.Errorf("document %d: %w", n, err)
		}
		if !firstDoc {
			io.WriteString(out, "---\n")
		}
		firstDoc = false
		if _, err := out.Write(res); err != nil {
			return err
		}
	}
}

func stripComments(b []byte) []byte {
	var out []byte
	for _, l := range bytes.Split(b, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out = append(out, l...)
		}
	}
	return out
}

func injectDoc(c *Config, doc []byte) ([]byte, error) {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return nil, err
	}
	var obj any
	var meta *metav1.ObjectMeta
	var tmpl *corev1.PodTemplateSpec
	switch tm.APIVersion + "/" + tm.Kind {
	case "v1/Pod":
		p := &corev1.Pod{}
		obj, meta, tmpl = p, &p.ObjectMeta, nil
		if err := yaml.UnmarshalStrict(doc, p); err != nil {
			return nil, err
		}
		injected, err := injectPod(c, p)
		if err != nil {
			return nil, err
		}
		return yaml.Marshal(injected)
	case "apps/v1/Deployment":
		d := &appsv1.Deployment{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "apps/v1/StatefulSet":
		d := &appsv1.StatefulSet{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "apps/v1/DaemonSet":
		d := &appsv1.DaemonSet{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "apps/v1/ReplicaSet":
		d := &appsv1.ReplicaSet{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "batch/v1/Job":
		d := &batchv1.Job{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.Template
	case "batch/v1/CronJob":
		d := &batchv1.CronJob{}
		obj, meta, tmpl = d, &d.ObjectMeta, &d.Spec.JobTemplate.Spec.Template
	case "v1/ReplicationController":
		d := &corev1.ReplicationController{Spec: corev1.ReplicationControllerSpec{Template: &corev1.PodTemplateSpec{}}}
		obj, meta = d, &d.ObjectMeta
		if err := yaml.UnmarshalStrict(doc, d); err != nil {
			return nil, err
		}
		if d.Spec.Template == nil {
			return doc, nil
		}
		tmpl = d.Spec.Template
	default:
		return doc, nil
	}
	if tm.Kind != "ReplicationController" {
		if err := yaml.UnmarshalStrict(doc, obj); err != nil {
			return nil, err
		}
	}
	// The pod the workload will create: its name is generated from the
	// workload's, which is what the injector derives the workload name from.
	pod := &corev1.Pod{ObjectMeta: *tmpl.ObjectMeta.DeepCopy(), Spec: *tmpl.Spec.DeepCopy()}
	pod.Namespace = meta.Namespace
	pod.Name = ""
	pod.GenerateName = meta.Name + "-"
	injected, err := injectPod(c, pod)
	if err != nil {
		return nil, err
	}
	tmpl.Labels, tmpl.Annotations, tmpl.Spec = injected.Labels, injected.Annotations, injected.Spec
	return yaml.Marshal(obj)
}

func injectPod(c *Config, pod *corev1.Pod) (*corev1.Pod, error) {
	ok, err := Required(c, pod)
	if err != nil || !ok {
		return pod, err
	}
	return Inject(c, pod)
}
