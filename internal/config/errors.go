package config

import (
	"cmp"
	"slices"
	"strings"
)

// Error is one problem found while loading or validating, anchored at the
// place in the source where it was written.
type Error struct {
	Pos  Position
	Path string // field path, e.g. spec.http[0].route[0].destination.host; may be empty
	Msg  string
	// Key names the resource the error belongs to, when known (zero for
	// errors outside any resource, such as YAML syntax errors).
	Key Key
	// Class says what kind of problem it is; the zero value is a schema
	// (validation) error.
	Class ErrorClass
}

// ErrorClass separates problems with a resource's content from problems
// reading a file at all.
type ErrorClass int

const (
	// ClassSchema: a resource fails decoding or validation.
	ClassSchema ErrorClass = iota
	// ClassFile: the file could not be read as Kubernetes YAML at all
	// (unreadable, too large, binary, a YAML syntax error, a document
	// that is not a Kubernetes object such as a Helm values file).
	ClassFile
	// ClassUnsupported: an Istio kind Weft does not implement yet.
	ClassUnsupported
	// ClassWarning: accepted, as Istio's webhook does, with a warning.
	ClassWarning
)

// Error formats as "file:line:col: path: msg".
func (e *Error) Error() string {
	var b strings.Builder
	if s := e.Pos.String(); s != "" {
		b.WriteString(s)
		b.WriteString(": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every error of a load; it implements error so callers that
// only need one message can treat it as a plain error.
type ErrorList []*Error

func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Sort orders the list by file, line, column and message, so output is stable.
func (l ErrorList) Sort() {
	slices.SortStableFunc(l, func(a, b *Error) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Pos.Column, b.Pos.Column),
			cmp.Compare(a.Path, b.Path),
			cmp.Compare(a.Msg, b.Msg),
		)
	})
}

// errOrNil returns nil for an empty list so callers can test err != nil.
func (l ErrorList) errOrNil() error {
	if len(l) == 0 {
		return nil
	}
	return l
}
