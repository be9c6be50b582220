package meshtls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// The helpers below read Envoy's TLS config the same way wherever it
// appears (a listener's DownstreamTlsContext, a cluster's
// UpstreamTlsContext): one reading of data sources, TLS versions, string
// matchers and SAN matchers.

// DataSource reads an Envoy DataSource: inline bytes, inline string or a
// file.
func DataSource(d *corev3.DataSource) ([]byte, error) {
	switch s := d.GetSpecifier().(type) {
	case *corev3.DataSource_InlineBytes:
		return s.InlineBytes, nil
	case *corev3.DataSource_InlineString:
		return []byte(s.InlineString), nil
	case *corev3.DataSource_Filename:
		return os.ReadFile(s.Filename)
	case nil:
		return nil, errors.New("empty data source")
	default:
		return nil, fmt.Errorf("%T not supported", s)
	}
}

// TLSVersion maps an Envoy TLS protocol version; TLS_AUTO means def.
func TLSVersion(v tlsv3.TlsParameters_TlsProtocol, def uint16) uint16 {
	switch v {
	case tlsv3.TlsParameters_TLSv1_0:
		return tls.VersionTLS10
	case tlsv3.TlsParameters_TLSv1_1:
		return tls.VersionTLS11
	case tlsv3.TlsParameters_TLSv1_2:
		return tls.VersionTLS12
	case tlsv3.TlsParameters_TLSv1_3:
		return tls.VersionTLS13
	}
	return def
}

// StringMatcher compiles an Envoy StringMatcher (exact, prefix, suffix,
// contains, safe_regex matching the whole string; ignore_case).
func StringMatcher(m *matcherv3.StringMatcher) (func(string) bool, error) {
	if m == nil {
		return nil, errors.New("missing string matcher")
	}
	fold := m.GetIgnoreCase()
	norm := func(s string) string {
		if fold {
			return strings.ToLower(s)
		}
		return s
	}
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		want := norm(p.Exact)
		return func(s string) bool { return norm(s) == want }, nil
	case *matcherv3.StringMatcher_Prefix:
		want := norm(p.Prefix)
		return func(s string) bool { return strings.HasPrefix(norm(s), want) }, nil
	case *matcherv3.StringMatcher_Suffix:
		want := norm(p.Suffix)
		return func(s string) bool { return strings.HasSuffix(norm(s), want) }, nil
	case *matcherv3.StringMatcher_Contains:
		want := norm(p.Contains)
		return func(s string) bool { return strings.Contains(norm(s), want) }, nil
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := regexp.Compile("^(?:" + p.SafeRegex.GetRegex() + ")$")
		if err != nil {
			return nil, fmt.Errorf("safe_regex: %w", err)
		}
		return re.MatchString, nil // ignore_case does not apply to regexes (Envoy)
	case nil:
		return nil, errors.New("string matcher without a pattern")
	default:
		return nil, fmt.Errorf("match_pattern: %T not supported", p)
	}
}

// SANMatcher checks a peer certificate's subject alt names against
// Envoy's match_typed_subject_alt_names (each matcher compares the SANs of
// its type) and the deprecated match_subject_alt_names (any SAN type):
// any match accepts, as in Envoy.
type SANMatcher struct {
	matchers []sanMatch
}

type sanMatch struct {
	typ   tlsv3.SubjectAltNameMatcher_SanType // SAN_TYPE_UNSPECIFIED: any type
	match func(string) bool
}

// CompileSANs compiles the typed and untyped SAN matchers; nil when there
// are none (no SAN check).
func CompileSANs(typed []*tlsv3.SubjectAltNameMatcher, untyped []*matcherv3.StringMatcher) (*SANMatcher, error) {
	if len(typed) == 0 && len(untyped) == 0 {
		return nil, nil
	}
	s := &SANMatcher{}
	for i, m := range typed {
		f, err := StringMatcher(m.GetMatcher())
		if err != nil {
			return nil, fmt.Errorf("match_typed_subject_alt_names[%d].matcher: %w", i, err)
		}
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_DNS, tlsv3.SubjectAltNameMatcher_URI,
			tlsv3.SubjectAltNameMatcher_EMAIL, tlsv3.SubjectAltNameMatcher_IP_ADDRESS:
		default:
			return nil, fmt.Errorf("match_typed_subject_alt_names[%d].san_type: %v not supported", i, m.GetSanType())
		}
		s.matchers = append(s.matchers, sanMatch{m.GetSanType(), f})
	}
	for i, m := range untyped {
		f, err := StringMatcher(m)
		if err != nil {
			return nil, fmt.Errorf("match_subject_alt_names[%d]: %w", i, err)
		}
		s.matchers = append(s.matchers, sanMatch{tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED, f})
	}
	return s, nil
}

// Check accepts c when a matcher matches one of its SANs.
func (s *SANMatcher) Check(c *x509.Certificate) error {
	if s == nil {
		return nil
	}
	for _, m := range s.matchers {
		for _, v := range sanValues(c, m.typ) {
			if m.match(v) {
				return nil
			}
		}
	}
	return fmt.Errorf("peer certificate SANs %v match no allowed subject alt name", sanValues(c, tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED))
}

func sanValues(c *x509.Certificate, typ tlsv3.SubjectAltNameMatcher_SanType) []string {
	any := typ == tlsv3.SubjectAltNameMatcher_SAN_TYPE_UNSPECIFIED
	var out []string
	if any || typ == tlsv3.SubjectAltNameMatcher_DNS {
		out = append(out, c.DNSNames...)
	}
	if any || typ == tlsv3.SubjectAltNameMatcher_URI {
		for _, u := range c.URIs {
			out = append(out, u.String())
		}
	}
	if any || typ == tlsv3.SubjectAltNameMatcher_EMAIL {
		out = append(out, c.EmailAddresses...)
	}
	if any || typ == tlsv3.SubjectAltNameMatcher_IP_ADDRESS {
		for _, ip := range c.IPAddresses {
			out = append(out, ip.String())
		}
	}
	return out
}
