package config

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	security "istio.io/api/security/v1beta1"
	telemetry "istio.io/api/telemetry/v1alpha1"
)

func init() {
	specValidators[KindAuthorizationPolicy] = func(v *validator, m proto.Message) { v.authorizationPolicy(m.(*security.AuthorizationPolicy)) }
	specValidators[KindRequestAuthentication] = func(v *validator, m proto.Message) { v.requestAuthentication(m.(*security.RequestAuthentication)) }
	specValidators[KindPeerAuthentication] = func(v *validator, m proto.Message) { v.peerAuthentication(m.(*security.PeerAuthentication)) }
	specValidators[KindTelemetry] = func(v *validator, m proto.Message) { v.telemetry(m.(*telemetry.Telemetry)) }
}

// The rules follow Istio's AuthorizationPolicy reference ("Authorization
// Policy Conditions" lists the keys) and pkg/config/validation.
func (v *validator) authorizationPolicy(ap *security.AuthorizationPolicy) {
	v.policySelector(ap.Selector, ap.TargetRef, ap.TargetRefs)
	provider := ap.GetProvider()
	switch ap.Action {
	case security.AuthorizationPolicy_CUSTOM:
		if provider == nil || provider.Name == "" {
			v.errorf("spec.provider", "action CUSTOM requires a provider with a name")
		}
	default:
		if provider != nil {
			v.errorf("spec.provider", "provider must only be used with action CUSTOM, not %s", ap.Action)
		}
	}
	for i, r := range ap.Rules {
		p := fmt.Sprintf("spec.rules[%d]", i)
		if r == nil {
			continue
		}
		if r.From != nil && len(r.From) == 0 {
			v.errorf(p+".from", "`from` must not be empty")
		}
		for j, f := range r.From {
			fp := fmt.Sprintf("%s.from[%d].source", p, j)
			if f.Source == nil {
				v.errorf(fp, "`from.source` must not be nil")
				continue
			}
			v.source(fp, f.Source)
		}
		if r.To != nil && len(r.To) == 0 {
			v.errorf(p+".to", "`to` must not be empty")
		}
		for j, t := range r.To {
			tp := fmt.Sprintf("%s.to[%d].operation", p, j)
			if t.Operation == nil {
				v.errorf(tp, "`to.operation` must not be nil")
				continue
			}
			v.operation(tp, t.Operation)
		}
		for j, c := range r.When {
			v.condition(fmt.Sprintf("%s.when[%d]", p, j), c)
		}
	}
}

type namedList struct {
	name string
	list []string
}

func (v *validator) nonEmptyValues(p string, lists []namedList) bool {
	set := false
	for _, l := range lists {
		if len(l.list) > 0 {
			set = true
		}
		for i, s := range l.list {
			if s == "" {
				v.errorf(fmt.Sprintf("%s.%s[%d]", p, l.name, i), "empty value is not allowed")
			}
		}
	}
	return set
}

func (v *validator) source(p string, s *security.Source) {
	if !v.nonEmptyValues(p, []namedList{
		{"principals", s.Principals}, {"notPrincipals", s.NotPrincipals},
		{"requestPrincipals", s.RequestPrincipals}, {"notRequestPrincipals", s.NotRequestPrincipals},
		{"namespaces", s.Namespaces}, {"notNamespaces", s.NotNamespaces},
		{"serviceAccounts", s.ServiceAccounts}, {"notServiceAccounts", s.NotServiceAccounts},
		{"ipBlocks", s.IpBlocks}, {"notIpBlocks", s.NotIpBlocks},
		{"remoteIpBlocks", s.RemoteIpBlocks}, {"notRemoteIpBlocks", s.NotRemoteIpBlocks},
		{"trustDomains", s.TrustDomains}, {"notTrustDomains", s.NotTrustDomains},
	}) {
		v.errorf(p, "`from.source` must not be empty")
	}
	for _, l := range []namedList{{"ipBlocks", s.IpBlocks}, {"notIpBlocks", s.NotIpBlocks}, {"remoteIpBlocks", s.RemoteIpBlocks}, {"notRemoteIpBlocks", s.NotRemoteIpBlocks}} {
		for i, ip := range l.list {
			if ip != "" {
				v.subnet(fmt.Sprintf("%s.%s[%d]", p, l.name, i), ip)
			}
		}
	}
	if (len(s.ServiceAccounts) > 0 || len(s.NotServiceAccounts) > 0) && (len(s.Principals) > 0 || len(s.NotPrincipals) > 0) {
		v.errorf(p, "cannot set serviceAccounts together with principals")
	}
}

func (v *validator) operation(p string, o *security.Operation) {
	if !v.nonEmptyValues(p, []namedList{
		{"hosts", o.Hosts}, {"notHosts", o.NotHosts}, {"ports", o.Ports}, {"notPorts", o.NotPorts},
		{"methods", o.Methods}, {"notMethods", o.NotMethods}, {"paths", o.Paths}, {"notPaths", o.NotPaths},
	}) {
		v.errorf(p, "`to.operation` must not be empty")
	}
	for _, l := range []namedList{{"ports", o.Ports}, {"notPorts", o.NotPorts}} {
		for i, s := range l.list {
			if n, err := strconv.Atoi(s); s != "" && (err != nil || n < 0 || n > 65535) {
				v.errorf(fmt.Sprintf("%s.%s[%d]", p, l.name, i), "invalid port %q: must be a number in 0..65535", s)
			}
		}
	}
	for _, l := range []namedList{{"paths", o.Paths}, {"notPaths", o.NotPaths}} {
		for i, s := range l.list {
			v.authzPath(fmt.Sprintf("%s.%s[%d]", p, l.name, i), s)
		}
	}
}

// authzPath checks Istio's path forms: exact, "prefix*", "*suffix", "*",
// or a path template with {*} / {**} segments.
func (v *validator) authzPath(p, s string) {
	if s == "" || s == "*" {
		return
	}
	if strings.Contains(s, "{") {
		for _, seg := range strings.Split(s, "/") {
			if strings.ContainsAny(seg, "{}") && seg != "{*}" && seg != "{**}" {
				v.errorf(p, "invalid path template %q: only whole {*} or {**} segments are allowed", s)
				return
			}
		}
		return
	}
	if strings.Count(s, "*") > 1 || (strings.Contains(s, "*") && !strings.HasPrefix(s, "*") && !strings.HasSuffix(s, "*")) {
		v.errorf(p, "invalid path %q: \"*\" is only allowed as a prefix or suffix", s)
	}
}

// conditionKeys are the `when` keys Istio supports (Authorization Policy
// Conditions). Keys with [] take a header or claim name.
var conditionKeys = map[string]string{
	"source.ip": "ip", "remote.ip": "ip", "destination.ip": "ip",
	"source.namespace": "", "source.principal": "", "source.serviceAccount": "sa", "source.trustDomain": "wildcard",
	"request.auth.principal": "", "request.auth.audiences": "", "request.auth.presenter": "",
	"destination.port": "port", "connection.sni": "",
}

func (v *validator) condition(p string, c *security.Condition) {
	key := c.Key
	switch {
	case key == "":
		v.errorf(p+".key", "`key` must not be empty")
		return
	case strings.HasPrefix(key, "request.headers["), strings.HasPrefix(key, "request.auth.claims["):
		if !strings.HasSuffix(key, "]") || strings.HasSuffix(key, "[]") {
			v.errorf(p+".key", "invalid key %q: needs a name in [], e.g. request.headers[user-agent]", key)
			return
		}
	case strings.HasPrefix(key, "experimental.envoy.filters."):
	default:
		if _, ok := conditionKeys[key]; !ok {
			v.errorf(p+".key", "unknown key %q (supported: request.headers[], source.ip, remote.ip, source.namespace, source.serviceAccount, source.principal, source.trustDomain, request.auth.principal, request.auth.audiences, request.auth.presenter, request.auth.claims[], destination.ip, destination.port, connection.sni)", key)
			return
		}
	}
	if len(c.Values) == 0 && len(c.NotValues) == 0 {
		v.errorf(p, "at least one of `values` or `notValues` must be set for key %s", key)
		return
	}
	for _, l := range []namedList{{"values", c.Values}, {"notValues", c.NotValues}} {
		// Istio: security.ValidateAttribute (pkg/config/security).
		if conditionKeys[key] == "sa" && len(l.list) > 16 {
			v.errorf(p+"."+l.name, "may not have more than 16 values")
		}
		for i, val := range l.list {
			vp := fmt.Sprintf("%s.%s[%d]", p, l.name, i)
			if val == "" {
				v.errorf(vp, "empty value not allowed, found in %s", key)
				continue
			}
			switch conditionKeys[key] {
			case "wildcard":
				if n := strings.Count(val, "*"); n > 1 {
					v.errorf(vp, "at most one wildcard is allowed, found in %s: %q", key, val)
				} else if n == 1 && val != "*" && !strings.HasPrefix(val, "*") && !strings.HasSuffix(val, "*") {
					v.errorf(vp, "wildcard is only allowed at the start or end, found in %s: %q", key, val)
				}
			case "sa":
				switch ns, sa, ok := strings.Cut(val, "/"); {
				case strings.Contains(val, "*"):
					v.errorf(vp, "wildcard not allowed, found in %s", key)
				case strings.Count(val, "/") > 1 || (ok && (ns == "" || sa == "")):
					v.errorf(vp, "expected format 'serviceAccount' or 'namespace/serviceAccount', found %q in %s", val, key)
				case len(val) > 320:
					v.errorf(vp, "value cannot exceed 320 characters, found %q in %s", val, key)
				}
			case "ip":
				v.subnet(vp, val)
			case "port":
				if n, err := strconv.Atoi(val); err != nil || n < 0 || n > 65535 {
					v.errorf(vp, "invalid port %q for key %s", val, key)
				}
			}
		}
	}
}

// requestAuthentication mirrors Istio's ValidateRequestAuthentication and
// validateJwtRule (pkg/config/validation/validation.go): issuer or jwksUri
// is required (an empty issuer accepts any), issuers may repeat, jwksUri needs only an
// http or https scheme (security.ParseJwksURI), inline jwks must parse and
// private key material in it is a warning (warnPrivateJwksKeys), and
// outputClaimToHeaders names are strict ([-_A-Za-z0-9]+,
// ValidateStrictHTTPHeaderName); outputPayloadToHeader is not checked.
func (v *validator) requestAuthentication(ra *security.RequestAuthentication) {
	v.policySelector(ra.Selector, ra.TargetRef, ra.TargetRefs)
	for i, r := range ra.JwtRules {
		p := fmt.Sprintf("spec.jwtRules[%d]", i)
		if r == nil {
			continue
		}
		for j, a := range r.Audiences {
			if a == "" {
				v.errorf(fmt.Sprintf("%s.audiences[%d]", p, j), "audience must be non-empty string")
			}
		}
		if r.Issuer == "" && r.JwksUri == "" {
			v.errorf(p, "issuer or jwksUri must be non-empty string")
		}
		if r.JwksUri != "" {
			if u, err := url.Parse(r.JwksUri); err != nil {
				v.errorf(p+".jwksUri", "%v", err)
			} else if u.Scheme != "http" && u.Scheme != "https" {
				v.errorf(p+".jwksUri", "URI scheme %q is not supported", u.Scheme)
			}
		}
		// The CRD's x-kubernetes-validations rule (the API server refuses
		// it before the webhook runs).
		if r.Jwks != "" && r.JwksUri != "" {
			v.errorf(p+".jwks", "only one of jwks or jwksUri can be set")
		}
		if r.Jwks != "" {
			v.jwks(p+".jwks", r.Jwks)
		}
		for j, h := range r.FromHeaders {
			if h == nil {
				v.errorf(fmt.Sprintf("%s.fromHeaders[%d]", p, j), "location header name must be non-null")
			} else if h.Name == "" {
				v.errorf(fmt.Sprintf("%s.fromHeaders[%d].name", p, j), "location header name must be non-empty string")
			}
		}
		for j, q := range r.FromParams {
			if q == "" {
				v.errorf(fmt.Sprintf("%s.fromParams[%d]", p, j), "location query must be non-empty string")
			}
		}
		for j, c := range r.FromCookies {
			if c == "" {
				v.errorf(fmt.Sprintf("%s.fromCookies[%d]", p, j), "cookie name must be non-empty string")
			}
		}
		for j, c := range r.OutputClaimToHeaders {
			cp := fmt.Sprintf("%s.outputClaimToHeaders[%d]", p, j)
			switch {
			case c == nil:
				v.errorf(cp, "outputClaimToHeaders must not be null")
			case c.Header == "" || c.Claim == "":
				v.errorf(cp, "outputClaimToHeaders header and claim value must be non-empty string")
			case !isStrictHeaderName(c.Header):
				v.errorf(cp+".header", "header name %s is not a valid header name", c.Header)
			}
		}
		if r.Timeout != nil {
			v.duration(p+".timeout", r.Timeout)
		}
	}
}

// isStrictHeaderName is Istio's validStrictHeaderNameRegex, [-_A-Za-z0-9]+.
func isStrictHeaderName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return s != ""
}

// jwks checks an inline key set as Istio's jwk.Parse does in outline: a
// JSON object that is a key set ({"keys": [...]}) or one key, each key a
// known kty; keys holding private material (RSA/EC/OKP "d", or any
// symmetric "oct" key) are a warning, as Istio's warnPrivateJwksKeys.
func (v *validator) jwks(p, src string) {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal([]byte(src), &raw); err != nil {
		v.errorf(p, "jwks parse error: %v", err)
		return
	}
	var keys []map[string]any
	if ks, ok := raw["keys"]; ok {
		if err := json.Unmarshal(ks, &keys); err != nil {
			v.errorf(p, "jwks parse error: keys: %v", err)
			return
		}
	} else {
		var one map[string]any
		if err := json.Unmarshal([]byte(src), &one); err != nil {
			v.errorf(p, "jwks parse error: %v", err)
			return
		}
		keys = []map[string]any{one}
	}
	for i, k := range keys {
		kty, _ := k["kty"].(string)
		_, private := k["d"]
		switch kty {
		case "RSA", "EC", "OKP":
		case "oct":
			private = true
		default:
			v.errorf(p, "jwks parse error: key %d: invalid key type %q", i, kty)
			continue
		}
		if private {
			v.warnf(p, "jwks key at index %d contains private key material; only public keys are used for verification", i)
		}
	}
}

func (v *validator) peerAuthentication(pa *security.PeerAuthentication) {
	noSelector := pa.Selector == nil || len(pa.Selector.MatchLabels) == 0
	if noSelector && len(pa.PortLevelMtls) > 0 {
		v.errorf("spec.portLevelMtls", "portLevelMtls requires a workload selector (mesh/namespace-wide peer authentication cannot have port level mTLS)")
	}
	if pa.PortLevelMtls != nil && len(pa.PortLevelMtls) == 0 {
		v.errorf("spec.portLevelMtls", "port level mTLS, if defined, must have at least one element")
	}
	for port := range pa.PortLevelMtls {
		v.port(fmt.Sprintf("spec.portLevelMtls[%d]", port), int64(port))
	}
	if pa.Selector != nil {
		v.selector("spec.selector.matchLabels", pa.Selector.MatchLabels)
		v.emptySelector("spec.selector", pa.Selector.MatchLabels)
	}
}

func (v *validator) telemetry(t *telemetry.Telemetry) {
	v.policySelector(t.Selector, t.TargetRef, t.TargetRefs)
	providers := func(p string, refs []*telemetry.ProviderRef) {
		for i, r := range refs {
			if r.Name == "" {
				v.errorf(fmt.Sprintf("%s.providers[%d].name", p, i), "provider name must not be empty")
			}
		}
	}
	// Istio: validateTelemetryTracing.
	if len(t.Tracing) > 1 {
		v.warnf("spec.tracing", "multiple tracing is not currently supported")
	}
	for i, tr := range t.Tracing {
		p := fmt.Sprintf("spec.tracing[%d]", i)
		if len(tr.Providers) > 1 {
			v.warnf(p+".providers", "multiple providers is not currently supported")
		}
		providers(p, tr.Providers)
		if s := tr.RandomSamplingPercentage; s != nil && (s.Value < 0 || s.Value > 100) {
			v.errorf(p+".randomSamplingPercentage", "randomSamplingPercentage %v must be in range [0.0, 100.0]", s.Value)
		}
		for name, tag := range tr.CustomTags {
			tp := p + ".customTags[" + name + "]"
			if name == "" {
				v.errorf(tp, "tag name may not be empty")
			}
			// A tag without a type is accepted, as Istio does.
			switch ty := tag.GetType().(type) {
			case *telemetry.Tracing_CustomTag_Literal:
				if ty.Literal.GetValue() == "" {
					v.errorf(tp+".literal.value", "literal tag value may not be empty")
				}
			case *telemetry.Tracing_CustomTag_Header:
				if ty.Header.GetName() == "" {
					v.errorf(tp+".header.name", "header tag name may not be empty")
				}
			case *telemetry.Tracing_CustomTag_Environment:
				if ty.Environment.GetName() == "" {
					v.errorf(tp+".environment.name", "environment tag name may not be empty")
				}
			}
		}
	}
	for i, m := range t.Metrics {
		p := fmt.Sprintf("spec.metrics[%d]", i)
		providers(p, m.Providers)
		if m.ReportingInterval != nil {
			v.duration(p+".reportingInterval", m.ReportingInterval)
		}
		for j, o := range m.Overrides {
			if mm, ok := o.GetMatch().GetMetricMatch().(*telemetry.MetricSelector_CustomMetric); ok && mm.CustomMetric == "" {
				v.errorf(fmt.Sprintf("%s.overrides[%d].match.customMetric", p, j), "customMetric may not be empty")
			}
			for tag, op := range o.TagOverrides {
				tp := fmt.Sprintf("%s.overrides[%d].tagOverrides[%s]", p, j, tag)
				if tag == "" {
					v.warnf(tp, "tagOverrides.name may not be empty")
				}
				if op.Operation == telemetry.MetricsOverrides_TagOverride_UPSERT && op.Value == "" {
					v.errorf(tp, "UPSERT needs a value expression")
				}
				if op.Operation == telemetry.MetricsOverrides_TagOverride_REMOVE && op.Value != "" {
					v.errorf(tp, "REMOVE must not have a value")
				}
			}
		}
	}
	for i, a := range t.AccessLogging {
		p := fmt.Sprintf("spec.accessLogging[%d]", i)
		providers(p, a.Providers)
		if a.Filter != nil && a.Filter.Expression == "" {
			v.errorf(p+".filter.expression", "filter expression must not be empty")
		}
	}
}
