package config

import (
	"regexp"
	"strings"
)

var (
	dnsLabelRE     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dns1123SubRE   = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	hostLabelRE    = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$`)
	labelKeyNameRE = regexp.MustCompile(`^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$`)
)

// isDNSLabel reports whether s is an RFC 1123 label (lower case, 63 max),
// the rule for namespaces and subset names.
func isDNSLabel(s string) bool { return len(s) <= 63 && dnsLabelRE.MatchString(s) }

// isDNS1123Subdomain is the rule for most Kubernetes object names.
func isDNS1123Subdomain(s string) bool { return len(s) <= 253 && dns1123SubRE.MatchString(s) }

func (v *validator) objectName(path, name string) {
	if !isDNS1123Subdomain(name) {
		v.errorf(path, "invalid name %q: must be a lower-case RFC 1123 subdomain", name)
	}
}

func (v *validator) dnsLabel(path, s string) {
	if !isDNSLabel(s) {
		v.errorf(path, "invalid %q: must be a lower-case RFC 1123 label (a-z, 0-9, '-', at most 63 characters)", s)
	}
}

// checkFQDN validates a host name without wildcard, as Istio's
// ValidateFQDN does: total length <= 255, labels as in RFC 1123 (mixed case
// accepted), an optional trailing dot is not allowed.
func checkFQDN(host string) string {
	if host == "" {
		return "host must not be empty"
	}
	if len(host) > 255 {
		return "host is too long (more than 255 characters)"
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" {
			return "host has an empty label"
		}
		if len(label) > 63 || !hostLabelRE.MatchString(label) {
			return "host label " + quote(label) + " is not a valid DNS label"
		}
	}
	return ""
}

// checkWildcardHost validates a host that may start with "*" (alone, or
// "*." followed by an FQDN, or "*suffix" as Istio allows: "*" only as the
// leftmost character).
func checkWildcardHost(host string) string {
	if host == "*" {
		return ""
	}
	if strings.Contains(host[min(1, len(host)):], "*") {
		return "wildcard \"*\" is only allowed as the leftmost character of a host"
	}
	if strings.HasPrefix(host, "*") {
		rest := strings.TrimPrefix(host[1:], ".")
		if rest == "" {
			return "host " + quote(host) + " is not valid"
		}
		// "*foo.com" is accepted by Istio (the label may start after the star).
		return checkFQDN(rest)
	}
	return checkFQDN(host)
}

func quote(s string) string { return `"` + s + `"` }

// checkLabels validates a label map (keys with optional prefix/, values).
func (v *validator) labels(path string, labels map[string]string) {
	for k, val := range labels {
		p := path + "[" + k + "]"
		name := k
		if prefix, n, ok := strings.Cut(k, "/"); ok {
			if !isDNS1123Subdomain(prefix) {
				v.errorf(p, "invalid label key %q: bad prefix", k)
				continue
			}
			name = n
		}
		if len(name) > 63 || !labelKeyNameRE.MatchString(name) {
			v.errorf(p, "invalid label key %q", k)
			continue
		}
		if len(val) > 63 || (val != "" && !labelKeyNameRE.MatchString(val)) {
			v.errorf(p, "invalid label value %q for key %q", val, k)
		}
	}
}
