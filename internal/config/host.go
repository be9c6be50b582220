package config

import "strings"

// Host names follow Istio's host.Name semantics: "*" matches everything,
// "*.example.com" matches any name ending in ".example.com", and a plain
// name matches itself (case-insensitively).

// hostMatches reports whether two host patterns overlap: some concrete
// name matches both.
func hostMatches(a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	switch {
	case a == b, a == "*", b == "*":
		return true
	case strings.HasPrefix(a, "*") && strings.HasPrefix(b, "*"):
		// Two wildcards overlap when one suffix ends with the other.
		return strings.HasSuffix(a[1:], b[1:]) || strings.HasSuffix(b[1:], a[1:])
	case strings.HasPrefix(a, "*"):
		return strings.HasSuffix(b, a[1:])
	case strings.HasPrefix(b, "*"):
		return strings.HasSuffix(a, b[1:])
	}
	return false
}

// hostSubsetOf reports whether every name matched by a is also matched by b.
func hostSubsetOf(a, b string) bool {
	a, b = strings.ToLower(a), strings.ToLower(b)
	switch {
	case b == "*", a == b:
		return true
	case a == "*":
		return false
	case strings.HasPrefix(b, "*"):
		if strings.HasPrefix(a, "*") {
			return strings.HasSuffix(a[1:], b[1:])
		}
		return strings.HasSuffix(a, b[1:])
	}
	return false
}

// ResolveHost expands a short service name the way Istio does for a
// resource in namespace ns: a name without dots, such as "reviews", becomes
// "reviews.<ns>.svc.<domain>". Names with a dot, wildcards and IP addresses
// are taken as written (Istio's ResolveShortnameToFQDN: "reviews.prod" is
// not expanded). domain is the cluster domain ("cluster.local" if empty).
func ResolveHost(host, ns, domain string) string {
	if domain == "" {
		domain = "cluster.local"
	}
	if host == "" || host == "*" || strings.Contains(host, ".") || strings.Contains(host, ":") {
		return host
	}
	return host + "." + ns + ".svc." + domain
}
