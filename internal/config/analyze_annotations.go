package config

import (
	"slices"
	"strings"

	"istio.io/api/annotation"
)

var (
	msgMisplacedAnnotation = msgType{"IST0107", "MisplacedAnnotation", LevelWarning, "Misplaced annotation: %s can only be applied to %s"}
	msgUnknownAnnotation   = msgType{"IST0108", "UnknownAnnotation", LevelWarning, "Unknown annotation: %s"}
	msgDeprecatedAnnot     = msgType{"IST0135", "DeprecatedAnnotation", LevelInfo, "Annotation %q has been deprecated%s and may not work in future Istio versions."}
)

// knownAnnotations indexes istio.io/api's annotation list by name.
var knownAnnotations = func() map[string]*annotation.Instance {
	m := map[string]*annotation.Instance{}
	for _, a := range annotation.AllResourceAnnotations() {
		m[a.Name] = a
	}
	return m
}()

// isIstioAnnotation: keys whose prefix is istio.io or a subdomain of it.
func isIstioAnnotation(key string) bool {
	prefix, _, ok := strings.Cut(key, "/")
	return ok && (prefix == "istio.io" || strings.HasSuffix(prefix, ".istio.io"))
}

// analyzeAnnotations checks Istio annotations against istio.io/api's
// list: unknown (IST0108), on the wrong kind (IST0107), deprecated
// (IST0135).
func analyzeAnnotations(ix *index) []*Message {
	var out []*Message
	for _, r := range ix.all {
		if r.Meta == nil {
			continue
		}
		keys := make([]string, 0, len(r.Meta.Annotations))
		for k := range r.Meta.Annotations {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !isIstioAnnotation(k) {
				continue
			}
			p := "metadata.annotations." + k
			a, ok := knownAnnotations[k]
			if !ok {
				out = append(out, newMessage(msgUnknownAnnotation, r, p, k))
				continue
			}
			var kinds []string
			applies := false
			for _, rt := range a.Resources {
				kinds = append(kinds, rt.String())
				if rt == annotation.Any || rt.String() == string(r.Kind) {
					applies = true
				}
			}
			if !applies {
				out = append(out, newMessage(msgMisplacedAnnotation, r, p, k, strings.Join(kinds, ", ")))
				continue
			}
			if a.Deprecated {
				out = append(out, newMessage(msgDeprecatedAnnot, r, p, k, ""))
			}
		}
	}
	return out
}
