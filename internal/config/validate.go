package config

import (
	"fmt"
	"reflect"

	"google.golang.org/protobuf/proto"
)

// Validate checks one resource against Istio's validation rules (the
// checks istiod's admission webhook makes). It is pure: no I/O and no look
// at other resources; cross-resource checks are analyzers. Errors carry the
// position of the offending field.
func Validate(r *Resource) []*Error {
	errs, _ := ValidateWithWarnings(r)
	return errs
}

// ValidateWithWarnings is Validate that also returns what Istio's webhook
// only warns about (deprecated fields, settings that have no effect):
// warnings never reject a resource.
func ValidateWithWarnings(r *Resource) (errs, warnings []*Error) {
	v := &validator{r: r}
	if r.Meta != nil {
		v.objectName("metadata.name", r.Meta.Name)
		if r.Meta.Namespace != "" {
			v.dnsLabel("metadata.namespace", r.Meta.Namespace)
		}
	}
	if !wellTyped(r) {
		v.errorf("", "%s resource holds a %T / %T", r.Kind, r.Object, r.Spec)
	} else {
		if fn, ok := specValidators[r.Kind]; ok && r.Spec != nil {
			fn(v, r.Spec)
		}
		if fn, ok := objectValidators[r.Kind]; ok && r.Object != nil {
			fn(v, r)
		}
	}
	ErrorList(v.errs).Sort()
	ErrorList(v.warns).Sort()
	return v.errs, v.warns
}

// wellTyped reports whether a resource's Object and Spec have the Go types
// its Kind promises (always true for loaded resources; hand-built ones in
// other packages might not be, and the validators type-assert).
func wellTyped(r *Resource) bool {
	want, ok := kindTypes[r.Kind]
	if !ok {
		return true
	}
	if r.Object != nil && reflect.TypeOf(r.Object) != want.object {
		return false
	}
	return r.Spec == nil || want.spec == nil || reflect.TypeOf(r.Spec) == want.spec
}

type goTypes struct{ object, spec reflect.Type }

// kindTypes maps each Kind to its object and spec types, taken from the
// loader's constructors.
var kindTypes = func() map[Kind]goTypes {
	m := map[Kind]goTypes{}
	for _, k := range kinds {
		if k.newIstio != nil {
			o, s, _ := k.newIstio()
			m[k.kind] = goTypes{reflect.TypeOf(o), reflect.TypeOf(s)}
			continue
		}
		o, _ := newK8sObject(k.kind)
		m[k.kind] = goTypes{object: reflect.TypeOf(o)}
	}
	return m
}()

// validator collects errors for one resource.
type validator struct {
	r     *Resource
	errs  []*Error
	warns []*Error
}

func (v *validator) errorf(path, format string, args ...any) {
	v.errs = append(v.errs, &Error{Pos: v.r.PosOf(path), Path: path, Msg: fmt.Sprintf(format, args...), Key: v.r.Key()})
}

// warnf records what Istio's webhook accepts with a warning.
func (v *validator) warnf(path, format string, args ...any) {
	v.warns = append(v.warns, &Error{Pos: v.r.PosOf(path), Path: path, Msg: fmt.Sprintf(format, args...), Key: v.r.Key(), Class: ClassWarning})
}

// specValidators are keyed by kind; each receives the resource's spec.
var specValidators = map[Kind]func(*validator, proto.Message){}

// objectValidators validate Kubernetes objects (Service, Secret).
var objectValidators = map[Kind]func(*validator, *Resource){}
