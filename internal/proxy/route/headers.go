package route

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// formatter finds Envoy substitution operators such as %REQ(x)%.
var formatter = regexp.MustCompile(`%[A-Z][A-Z0-9_]*(\([^)]*\))?(:[0-9]+)?%`)

// Headers are compiled header mutations for one level of the hierarchy
// (route configuration, virtual host, route, weighted cluster).
type Headers struct {
	Request  HeaderOps
	Response HeaderOps
}

// HeaderOps removes, then adds headers.
type HeaderOps struct {
	Remove []string // canonical keys
	Add    []HeaderAdd
}

// Empty reports whether there is nothing to do.
func (o *HeaderOps) Empty() bool { return len(o.Remove) == 0 && len(o.Add) == 0 }

// AppendAction is Envoy's HeaderValueOption.HeaderAppendAction.
type AppendAction uint8

const (
	AppendOrAdd       AppendAction = iota // APPEND_IF_EXISTS_OR_ADD (the default)
	AddIfAbsent                           // ADD_IF_ABSENT
	OverwriteOrAdd                        // OVERWRITE_IF_EXISTS_OR_ADD
	OverwriteIfExists                     // OVERWRITE_IF_EXISTS
)

// HeaderAdd is one header to add.
type HeaderAdd struct {
	Key    string // canonical
	Value  string
	Action AppendAction
}

func compileHeaderOps(add []*corev3.HeaderValueOption, remove []string, path string) (HeaderOps, error) {
	var o HeaderOps
	for _, r := range remove {
		if r == "" || strings.HasPrefix(r, ":") || strings.EqualFold(r, "host") {
			return o, fmt.Errorf("%s: header %q may not be removed", path, r)
		}
		o.Remove = append(o.Remove, http.CanonicalHeaderKey(r))
	}
	for i, a := range add {
		p := fmt.Sprintf("%s[%d]", path, i)
		if err := xdsfield.Check(a, p, "header", "append", "append_action", "keep_empty_value"); err != nil {
			return o, err
		}
		h := a.GetHeader()
		if err := xdsfield.Check(h, p+".header", "key", "value", "raw_value"); err != nil {
			return o, err
		}
		k := h.GetKey()
		// Envoy rejects pseudo-headers and Host here: use host rewrites.
		if k == "" || strings.HasPrefix(k, ":") || strings.EqualFold(k, "host") {
			return o, fmt.Errorf("%s.header.key: header %q may not be modified", p, k)
		}
		v := h.GetValue()
		if len(h.GetRawValue()) > 0 {
			v = string(h.GetRawValue())
		}
		if formatter.MatchString(v) {
			// %FORMATTER% substitutions are not implemented: refuse rather
			// than send the literal.
			return o, fmt.Errorf("%s.header.value: header formatters (%q) not supported by weft-proxy", p, v)
		}
		if v == "" && !a.GetKeepEmptyValue() {
			continue // Envoy drops empty values unless asked to keep them.
		}
		act := AppendAction(a.GetAppendAction())
		if a.GetAppend() != nil {
			// The deprecated bool wins when set: true appends, false overwrites.
			act = OverwriteOrAdd
			if a.GetAppend().GetValue() {
				act = AppendOrAdd
			}
		}
		o.Add = append(o.Add, HeaderAdd{Key: http.CanonicalHeaderKey(k), Value: strings.ReplaceAll(v, "%%", "%"), Action: act})
	}
	return o, nil
}

func compileHeaders(reqAdd []*corev3.HeaderValueOption, reqRemove []string,
	respAdd []*corev3.HeaderValueOption, respRemove []string, path string) (Headers, error) {
	var h Headers
	var err error
	if h.Request, err = compileHeaderOps(reqAdd, reqRemove, path+".request_headers_to_add"); err != nil {
		return h, err
	}
	h.Response, err = compileHeaderOps(respAdd, respRemove, path+".response_headers_to_add")
	return h, err
}

// Apply mutates h: removals first, then additions in order.
func (o *HeaderOps) Apply(h http.Header) {
	for _, k := range o.Remove {
		delete(h, k)
	}
	for i := range o.Add {
		a := &o.Add[i]
		_, exists := h[a.Key]
		switch a.Action {
		case AppendOrAdd:
			h[a.Key] = append(h[a.Key], a.Value)
		case AddIfAbsent:
			if !exists {
				h[a.Key] = []string{a.Value}
			}
		case OverwriteOrAdd:
			h[a.Key] = []string{a.Value}
		case OverwriteIfExists:
			if exists {
				h[a.Key] = []string{a.Value}
			}
		}
	}
}
