package config

import (
	"fmt"

	"google.golang.org/protobuf/proto"
)

// Validate checks one resource against Istio's validation rules (the
// checks istiod's admission webhook makes). It is pure: no I/O and no look
// at other resources; cross-resource checks are analyzers. Errors carry the
// position of the offending field.
func Validate(r *Resource) []*Error {
	v := &validator{r: r}
	if r.Meta != nil {
		v.objectName("metadata.name", r.Meta.Name)
		if r.Meta.Namespace != "" {
			v.dnsLabel("metadata.namespace", r.Meta.Namespace)
		}
	}
	if fn, ok := specValidators[r.Kind]; ok && r.Spec != nil {
		fn(v, r.Spec)
	}
	if fn, ok := objectValidators[r.Kind]; ok && r.Object != nil {
		fn(v, r)
	}
	ErrorList(v.errs).Sort()
	return v.errs
}

// validator collects errors for one resource.
type validator struct {
	r    *Resource
	errs []*Error
}

func (v *validator) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{Pos: v.r.PosOf(path), Path: path, Msg: fmt.Sprintf(format, args...), Key: v.r.Key()})
}

// specValidators are keyed by kind; each receives the resource's spec.
var specValidators = map[Kind]func(*validator, proto.Message){}

// objectValidators validate Kubernetes objects (Service, Secret).
var objectValidators = map[Kind]func(*validator, *Resource){}
