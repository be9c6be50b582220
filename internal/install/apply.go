package install

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// FieldManager owns the fields Weft applies (server-side apply).
const FieldManager = "weft-install"

// maxManifest bounds one manifest (bad input must not exhaust memory).
const maxManifest = 64 << 20

// Applier applies and deletes manifests with server-side apply.
type Applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

// NewApplier connects to the API server of cfg.
func NewApplier(cfg *rest.Config) (*Applier, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return &Applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))}, nil
}

// Decode splits a YAML or JSON stream into objects.
func Decode(data []byte) ([]*unstructured.Unstructured, error) {
	if len(data) > maxManifest {
		return nil, fmt.Errorf("manifest larger than %d bytes", maxManifest)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for i := 1; ; i++ {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("document %d: apiVersion, kind and metadata.name are required", i)
		}
		out = append(out, u)
	}
}

// Result is what happened to one object.
type Result struct {
	Kind, Namespace, Name string
	// Action is created, configured, unchanged or deleted (or "not found"
	// on delete); with DryRun the server validated but stored nothing.
	Action string
}

func (r Result) String() string {
	n := r.Name
	if r.Namespace != "" {
		n = r.Namespace + "/" + n
	}
	return fmt.Sprintf("%s %s %s", r.Kind, n, r.Action)
}

// Apply server-side-applies the objects in order. CRDs are waited for
// (Established) before the objects after them are mapped. dryRun asks the
// server to validate and admit without storing.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured, dryRun bool) ([]Result, error) {
	var out []Result
	for i, u := range objs {
		ri, err := a.resource(u)
		if err != nil {
			return out, err
		}
		var before string
		if cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{}); err == nil {
			before = cur.GetResourceVersion()
		} else if !apierrors.IsNotFound(err) {
			return out, fmt.Errorf("%s: %w", describe(u), err)
		}
		opts := metav1.ApplyOptions{FieldManager: FieldManager, Force: true}
		if dryRun {
			opts.DryRun = []string{metav1.DryRunAll}
		}
		got, err := ri.Apply(ctx, u.GetName(), u, opts)
		if err != nil {
			return out, fmt.Errorf("%s: %w", describe(u), err)
		}
		r := Result{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName()}
		switch {
		case before == "":
			r.Action = "created"
		case before == got.GetResourceVersion():
			r.Action = "unchanged"
		default:
			r.Action = "configured"
		}
		if dryRun {
			r.Action += " (server dry run)"
		}
		out = append(out, r)
		if u.GetKind() == "CustomResourceDefinition" && !dryRun && (i+1 == len(objs) || objs[i+1].GetKind() != "CustomResourceDefinition") {
			if err := a.waitCRDs(ctx, objs[:i+1]); err != nil {
				return out, err
			}
			a.mapper.Reset()
		}
	}
	return out, nil
}

// Delete removes the objects in reverse order; missing ones are reported,
// not errors.
func (a *Applier) Delete(ctx context.Context, objs []*unstructured.Unstructured) ([]Result, error) {
	var out []Result
	for i := len(objs) - 1; i >= 0; i-- {
		u := objs[i]
		r := Result{Kind: u.GetKind(), Namespace: u.GetNamespace(), Name: u.GetName(), Action: "deleted"}
		ri, err := a.resource(u)
		if err != nil {
			if meta.IsNoMatchError(err) {
				r.Action = "not found"
				out = append(out, r)
				continue
			}
			return out, err
		}
		err = ri.Delete(ctx, u.GetName(), metav1.DeleteOptions{PropagationPolicy: ptr(metav1.DeletePropagationBackground)})
		switch {
		case apierrors.IsNotFound(err):
			r.Action = "not found"
		case err != nil:
			return out, fmt.Errorf("%s: %w", describe(u), err)
		}
		out = append(out, r)
	}
	return out, nil
}

func (a *Applier) resource(u *unstructured.Unstructured) (dynamic.ResourceInterface, error) {
	gvk := u.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if meta.IsNoMatchError(err) {
		a.mapper.Reset() // a CRD may have just been created
		m, err = a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", describe(u), err)
	}
	if m.Scope.Name() == meta.RESTScopeNameNamespace {
		ns := u.GetNamespace()
		if ns == "" {
			ns = "default"
			u.SetNamespace(ns)
		}
		return a.dyn.Resource(m.Resource).Namespace(ns), nil
	}
	return a.dyn.Resource(m.Resource), nil
}

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// waitCRDs waits until every CRD among objs is Established, so custom
// resources applied next are accepted.
func (a *Applier) waitCRDs(ctx context.Context, objs []*unstructured.Unstructured) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for _, u := range objs {
		if u.GetKind() != "CustomResourceDefinition" {
			continue
		}
		for {
			if ok, err := Established(ctx, a.dyn, u.GetName()); err == nil && ok {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("CRD %s not established: %w", u.GetName(), ctx.Err())
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

// Established reports whether the named CRD is established.
func Established(ctx context.Context, dyn dynamic.Interface, name string) (bool, error) {
	crd, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	conds, _, _ := unstructured.NestedSlice(crd.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true, nil
		}
	}
	return false, nil
}

func describe(u *unstructured.Unstructured) string {
	if u.GetNamespace() != "" {
		return fmt.Sprintf("%s %s/%s", u.GetKind(), u.GetNamespace(), u.GetName())
	}
	return fmt.Sprintf("%s %s", u.GetKind(), u.GetName())
}
