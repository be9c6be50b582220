package install

import (
	"context"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// Finding is one line of `weft check`.
type Finding struct {
	Object string
	OK     bool
	Detail string
}

func (f Finding) String() string {
	mark := "ok  "
	if !f.OK {
		mark = "FAIL"
	}
	if f.Detail == "" {
		return fmt.Sprintf("%s %s", mark, f.Object)
	}
	return fmt.Sprintf("%s %s: %s", mark, f.Object, f.Detail)
}

// Check reports, for every object of the installation, whether it exists,
// and for CRDs and Deployments whether they are established and available.
func (a *Applier) Check(ctx context.Context, objs []*unstructured.Unstructured) []Finding {
	var out []Finding
	for _, u := range objs {
		f := Finding{Object: describe(u), OK: true}
		ri, err := a.resource(u)
		if err != nil {
			f.OK, f.Detail = false, "API not served (CRDs missing?): "+err.Error()
			out = append(out, f)
			continue
		}
		cur, err := ri.Get(ctx, u.GetName(), metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			f.OK, f.Detail = false, "missing"
		case err != nil:
			f.OK, f.Detail = false, err.Error()
		case u.GetKind() == "CustomResourceDefinition":
			if ok, _ := Established(ctx, a.dyn, u.GetName()); !ok {
				f.OK, f.Detail = false, "not established"
			}
		case u.GetKind() == "Deployment":
			want, _, _ := unstructured.NestedInt64(cur.Object, "spec", "replicas")
			avail, _, _ := unstructured.NestedInt64(cur.Object, "status", "availableReplicas")
			f.Detail = fmt.Sprintf("%d/%d available", avail, want)
			if avail < want {
				f.OK = false
			}
		}
		out = append(out, f)
	}
	return out
}
