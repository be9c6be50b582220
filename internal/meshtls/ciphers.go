package meshtls

import (
	"crypto/tls"
	"fmt"
	"strings"
)

// envoyCiphers maps the OpenSSL-style names Envoy's cipher_suites (and
// Istio's cipherSuites) use to Go's TLS 1.2 suites. TLS 1.3 suites are not
// configurable in Go (nor by cipher_suites in Envoy), so names of them are
// accepted and have no effect on TLS 1.2.
var envoyCiphers = map[string]uint16{
	"ECDHE-ECDSA-AES128-GCM-SHA256": tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-RSA-AES128-GCM-SHA256":   tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	"ECDHE-ECDSA-AES256-GCM-SHA384": tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-RSA-AES256-GCM-SHA384":   tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	"ECDHE-ECDSA-CHACHA20-POLY1305": tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-RSA-CHACHA20-POLY1305":   tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	"ECDHE-ECDSA-AES128-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA,
	"ECDHE-RSA-AES128-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA,
	"ECDHE-ECDSA-AES256-SHA":        tls.TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA,
	"ECDHE-RSA-AES256-SHA":          tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA,
	"AES128-GCM-SHA256":             tls.TLS_RSA_WITH_AES_128_GCM_SHA256,
	"AES256-GCM-SHA384":             tls.TLS_RSA_WITH_AES_256_GCM_SHA384,
	"AES128-SHA":                    tls.TLS_RSA_WITH_AES_128_CBC_SHA,
	"AES256-SHA":                    tls.TLS_RSA_WITH_AES_256_CBC_SHA,
}

// CipherSuites maps Envoy cipher_suites entries to Go suite ids. An entry
// may be an OpenSSL "[A|B]" equal-preference group, as Envoy allows. An
// unknown name is an error naming it, so the config is refused rather
// than served with ciphers it did not ask for.
func CipherSuites(names []string) ([]uint16, error) {
	var out []uint16
	for _, n := range names {
		for _, alt := range strings.Split(strings.Trim(n, "[]"), "|") {
			alt = strings.TrimSpace(alt)
			if strings.HasPrefix(alt, "TLS_AES_") || strings.HasPrefix(alt, "TLS_CHACHA20_") {
				continue // TLS 1.3, always on
			}
			id, ok := envoyCiphers[alt]
			if !ok {
				return nil, fmt.Errorf("unsupported cipher suite %q", alt)
			}
			out = append(out, id)
		}
	}
	return out, nil
}
