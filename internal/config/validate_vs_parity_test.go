package config

import (
	"strings"
	"testing"
)

// TestValidateVirtualServiceIstioParity: one case per VirtualService rule
// brought to Istio 1.31's (pkg/config/validation/virtualservice.go and
// validation.go), each citing the Istio function it mirrors.
func TestValidateVirtualServiceIstioParity(t *testing.T) {
	vs := func(http string) string { return doc(net1, "VirtualService", "  hosts: [a]\n  http:\n"+http) }
	gwvs := func(http string) string {
		return doc(net1, "VirtualService", "  hosts: [a.example.com]\n  gateways: [gw]\n  http:\n"+http)
	}
	route := "    route: [{destination: {host: a}}]\n"
	first := "  - route: [{destination: {host: a}}]\n"
	long := strings.Repeat("a", 1025)
	for _, c := range []struct {
		name, src  string
		want, warn string
	}{
		// validateHTTPRouteDestinations / validateWeight: weights are
		// relative (no sum of 100, no upper bound); only all-zero fails.
		{name: "weights not summing to 100 accepted", src: vs("  - route:\n    - destination: {host: a, subset: v1}\n      weight: 1\n    - destination: {host: a, subset: v2}\n      weight: 3\n")},
		{name: "weight above 100 accepted", src: vs("  - route:\n    - destination: {host: a}\n      weight: 120\n")},
		{name: "all weights zero", src: vs("  - route:\n    - destination: {host: a, subset: v1}\n    - destination: {host: a, subset: v2}\n"),
			want: "total destination weight = 0"},
		{name: "negative weight", src: vs("  - route:\n    - destination: {host: a}\n      weight: -1\n"), want: "weight -1 < 0"},
		// validateRouteDestinations: the same for TCP routes.
		{name: "tcp weights relative", src: doc(net1, "VirtualService", "  hosts: [a]\n  tcp:\n  - route:\n    - destination: {host: a, subset: v1}\n      weight: 80\n    - destination: {host: a, subset: v2}\n      weight: 30\n")},
		// validateHTTPRouteConflict: a root route may delegate and answer
		// directly; only route and redirect are refused beside delegate.
		{name: "root route delegate with direct response accepted", src: gwvs("  - delegate: {name: d}\n    directResponse: {status: 200}\n    rewrite: {uri: /x}\n")},
		{name: "root route delegate with redirect", src: gwvs("  - name: r\n    delegate: {name: d}\n    redirect: {uri: /x}\n"), want: "root HTTP route r must not specify redirect"},
		{name: "root route delegate with route", src: gwvs("  - name: r\n    delegate: {name: d}\n    route: [{destination: {host: a}}]\n"), want: "root HTTP route r must not specify route"},
		// validateHTTPRouteConflict: fault with direct_response.
		{name: "fault and direct response", src: vs("  - directResponse: {status: 503}\n    fault: {abort: {httpStatus: 500, percentage: {value: 1}}}\n"),
			want: "HTTP route cannot contain both fault and direct_response"},
		{name: "rewrite and direct response", src: vs("  - directResponse: {status: 200}\n    rewrite: {uri: /x}\n"), want: "HTTP route rule cannot contain both rewrite and direct_response"},
		{name: "redirect and direct response", src: vs("  - directResponse: {status: 200}\n    redirect: {uri: /x}\n"), want: "HTTP route rule cannot contain both direct_response and redirect"},
		{name: "mirror and mirrors", src: vs(first + "    mirror: {host: b}\n    mirrors: [{destination: {host: c}}]\n"), want: "HTTP route cannot contain both mirror and mirrors"},
		// validateHTTPRoute / validateHTTPMirrors: mirror percentages are
		// checked for [0, 100] only (not the fault percentage's precision).
		{name: "tiny mirror percentage accepted", src: vs(first + "    mirror: {host: b}\n    mirrorPercentage: {value: 0.00001}\n")},
		{name: "mirrors percentage above 100", src: vs(first + "    mirrors: [{destination: {host: c}, percentage: {value: 101}}]\n"),
			want: "mirror percentage must have a max value of 100"},
		// validateAuthorityRewrite: the authority is rewritten once.
		{name: "authority rewritten twice", src: vs(first + "    rewrite: {authority: b}\n    headers: {request: {set: {host: c}}}\n"),
			want: "authority header cannot be set multiple times"},
		{name: "authority by header only accepted", src: vs(first + "    headers: {request: {set: {':authority': c}}}\n")},
		// validateHTTPRouteMatchRequest / ValidateHTTPHeaderNameOrJwtClaimRoute.
		{name: "match header not a token", src: vs("  - match: [{headers: {'a b': {exact: x}}}]\n" + route), want: "header name a b is not a valid header name"},
		{name: "match pseudo header accepted", src: vs("  - match: [{headers: {':path': {exact: /x}}}]\n" + route)},
		{name: "match claim at gateway accepted", src: gwvs("  - match: [{headers: {'@request.auth.claims[group]': {exact: x}}}]\n" + route)},
		// ValidateVirtualService: claim routing only where no sidecar
		// applies (gateways without mesh).
		{name: "match claim on sidecars", src: vs("  - match: [{withoutHeaders: {'@request.auth.claims.group': {exact: x}}}]\n" + route),
			want: "JWT claim based routing (key: @request.auth.claims.group) is only supported for gateway"},
		// ValidateVirtualService has no gateway-only rule for delegation
		// (Istio merges delegates for sidecars too).
		{name: "delegate on mesh accepted", src: vs("  - delegate: {name: d}\n")},
		// validateStringMatch: only the uri may have an empty prefix.
		{name: "empty header prefix", src: vs("  - match: [{headers: {x-a: {prefix: ''}}}]\n" + route), want: "prefix string match should not be empty"},
		{name: "empty uri prefix accepted", src: vs("  - match: [{uri: {prefix: ''}}]\n" + route)},
		// validateStringMatchRegexp / validateStringRegexp.
		{name: "empty regex", src: vs("  - match: [{uri: {regex: ''}}]\n" + route), want: "regex string match should not be empty"},
		{name: "regex too long", src: vs("  - match: [{method: {regex: '" + long + "'}}]\n" + route), want: "regex is too large, max length allowed is 1024"},
		{name: "withoutHeaders star accepted", src: vs("  - match: [{withoutHeaders: {x-a: {regex: '*'}}}]\n" + route)},
		// ValidateHTTPHeaderWithAuthorityOperationName: request set/add may
		// name Host or :authority, not other pseudo headers; names are
		// not checked as tokens.
		{name: "request set host accepted", src: vs(first + "    headers: {request: {set: {host: b}}}\n")},
		{name: "request set pseudo header", src: vs(first + "    headers: {request: {set: {':path': /x}}}\n"), want: `invalid header ":path": header cannot have ":" prefix`},
		{name: "header name with space accepted", src: vs(first + "    headers: {request: {add: {'a b': x}}}\n")},
		// ValidateHTTPHeaderOperationName: no Host in removes or responses.
		{name: "request remove host", src: vs(first + "    headers: {request: {remove: [Host]}}\n"), want: `invalid header "Host": cannot set Host header`},
		{name: "response set host", src: vs(first + "    headers: {response: {set: {host: b}}}\n"), want: `invalid header "host": cannot set Host header`},
		{name: "destination response authority", src: vs("  - route:\n    - destination: {host: a}\n      headers: {response: {add: {':authority': b}}}\n"), want: `header cannot have ":" prefix`},
		// ValidateHTTPHeaderValue: control characters and Envoy's
		// %VARIABLE% syntax.
		{name: "header value variable accepted", src: vs(first + "    headers: {request: {set: {x-a: 'pre %HOSTNAME% %REQ(x-b)% 100%%'}}}\n")},
		{name: "header value unescaped percent", src: vs(first + "    headers: {request: {set: {x-a: 'abc%'}}}\n"), want: "Un-escaped %"},
		{name: "header value unterminated variable", src: vs(first + "    headers: {response: {add: {x-a: '%START_TIME'}}}\n"), want: "Un-terminated variable expression"},
		{name: "header value control character", src: vs(first + "    headers: {request: {set: {x-a: \"a\\x01b\"}}}\n"), want: "is invalid"},
		// ValidateCORSHTTPHeaderName: "*" or a token.
		{name: "cors allow header star accepted", src: vs(first + "    corsPolicy: {allowOrigins: [{exact: 'https://a'}], allowHeaders: ['*']}\n")},
		{name: "cors expose header not a token", src: vs(first + "    corsPolicy: {allowOrigins: [{exact: 'https://a'}], exposeHeaders: ['x:y']}\n"), want: "header name x:y is not a valid header name"},
		// validateHTTPRedirect: prefixRewrite needs prefix uri matches.
		{name: "redirect prefix rewrite with exact match", src: vs("  - match: [{uri: {exact: /a}}]\n    redirect: {prefixRewrite: /b}\n"),
			want: "redirect prefix_rewrite requires all URI matches to use prefix match type"},
		{name: "redirect prefix rewrite with prefix match accepted", src: vs("  - match: [{uri: {prefix: /a}}, {headers: {x: {exact: y}}}]\n    redirect: {prefixRewrite: /b}\n")},
		// validateHTTPDirectResponse: bodies over 100 KB warn, over 1 MB fail.
		{name: "direct response large body warns", src: vs("  - directResponse: {status: 200, body: {string: '" + strings.Repeat("x", 100<<10+1) + "'}}\n"),
			warn: "large direct_responses may impact control plane performance"},
		{name: "direct response huge body", src: vs("  - directResponse: {status: 200, body: {string: '" + strings.Repeat("x", 1<<20+1) + "'}}\n"),
			want: "must be less than 1MB"},
		// validateURIRegexRewrite: match and rewrite both required.
		{name: "regex rewrite without rewrite", src: vs(first + "    rewrite: {uriRegexRewrite: {match: '^/a'}}\n"),
			want: "UriRegexRewrite requires both Rewrite and Match fields to be specified"},
		// ValidateHTTPRetry: retryOn split on "," without trimming.
		{name: "retryOn with a space", src: vs(first + "    retries: {attempts: 2, retryOn: '5xx, reset'}\n"), want: `" reset" is not a valid retryOn policy`},
		// validateHTTPFaultInjectionDelay: the deprecated integer percent
		// is not checked.
		{name: "delay legacy percent accepted", src: vs(first + "    fault: {delay: {fixedDelay: 1s, percent: 150}}\n")},
		// validateTCPMatch: sourceSubnet is not checked.
		{name: "tcp source subnet unchecked", src: doc(net1, "VirtualService", "  hosts: [a]\n  tcp:\n  - match: [{sourceSubnet: nonsense}]\n    route: [{destination: {host: a}}]\n")},
		// validateSniHost: an IPv6 SNI host only warns.
		{name: "tls ipv6 sni warns", src: doc(net1, "VirtualService", "  hosts: [a.example.com]\n  tls:\n  - match: [{sniHosts: ['::1']}]\n    route: [{destination: {host: a}}]\n"),
			warn: "goes against SNI spec"},
		// validateAllowOrigins: an empty exact origin.
		{name: "cors empty exact origin", src: vs(first + "    corsPolicy: {allowOrigins: [{exact: ''}]}\n"), want: "is not a valid match type for CORS allow origins"},
	} {
		t.Run(c.name, func(t *testing.T) { checkValidation(t, c.src, c.want, c.warn) })
	}
}
