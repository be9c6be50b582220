package hcm

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

const xfccHeader = "X-Forwarded-Client-Cert"

// xfccConfig is Envoy's x-forwarded-client-cert handling
// (forward_client_cert_details and set_current_client_cert_details).
type xfccConfig struct {
	mode hcmv3.HttpConnectionManager_ForwardClientCertDetails
	// Which details of the current client certificate are added.
	subject, uri, dns bool
}

func (m *Manager) compileXFCC(cfg *hcmv3.HttpConnectionManager, p string) error {
	m.xfcc.mode = cfg.GetForwardClientCertDetails()
	switch m.xfcc.mode {
	case hcmv3.HttpConnectionManager_SANITIZE, hcmv3.HttpConnectionManager_FORWARD_ONLY,
		hcmv3.HttpConnectionManager_APPEND_FORWARD, hcmv3.HttpConnectionManager_SANITIZE_SET,
		hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY:
	default:
		return fmt.Errorf("%s.forward_client_cert_details: %v not supported", p, m.xfcc.mode)
	}
	if d := cfg.GetSetCurrentClientCertDetails(); d != nil {
		// cert and chain (URL-encoded PEM) are not implemented: NACK them.
		if err := xdsfield.Check(d, p+".set_current_client_cert_details", "subject", "uri", "dns"); err != nil {
			return err
		}
		m.xfcc.subject, m.xfcc.uri, m.xfcc.dns = d.GetSubject().GetValue(), d.GetUri(), d.GetDns()
	}
	return nil
}

// apply rewrites the request's XFCC header as Envoy's connection manager
// does: a client that did not present a verified certificate can never
// pass one on (the header is removed unless ALWAYS_FORWARD_ONLY);
// under mutual TLS, APPEND_FORWARD appends the current client's element
// and SANITIZE_SET replaces the header with it.
func (x *xfccConfig) apply(h http.Header, cc *conn) {
	var peer *x509.Certificate
	if cc != nil && cc.info.TLS != nil && len(cc.info.TLS.VerifiedChains) > 0 && len(cc.info.TLS.PeerCertificates) > 0 {
		peer = cc.info.TLS.PeerCertificates[0]
	}
	switch {
	case x.mode == hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY:
		return
	case peer == nil || x.mode == hcmv3.HttpConnectionManager_SANITIZE:
		delete(h, xfccHeader)
		return
	case x.mode == hcmv3.HttpConnectionManager_FORWARD_ONLY:
		return
	}
	cur := x.element(peer, cc)
	if x.mode == hcmv3.HttpConnectionManager_APPEND_FORWARD {
		if prior := h.Values(xfccHeader); len(prior) > 0 {
			cur = strings.Join(prior, ",") + "," + cur
		}
	}
	h[xfccHeader] = []string{cur}
}

// element is one XFCC element: By (this proxy's URI SAN), Hash (SHA-256
// of the client certificate), then Subject, URI and DNS as configured.
func (x *xfccConfig) element(peer *x509.Certificate, cc *conn) string {
	var b strings.Builder
	if local := cc.info.LocalCert; local != nil && len(local.URIs) > 0 {
		b.WriteString("By=")
		b.WriteString(local.URIs[0].String())
		b.WriteByte(';')
	}
	sum := sha256.Sum256(peer.Raw)
	b.WriteString("Hash=")
	b.WriteString(hex.EncodeToString(sum[:]))
	if x.subject {
		b.WriteString(`;Subject="`)
		b.WriteString(strings.ReplaceAll(peer.Subject.String(), `"`, `\"`))
		b.WriteByte('"')
	}
	if x.uri && len(peer.URIs) > 0 {
		b.WriteString(";URI=")
		b.WriteString(peer.URIs[0].String())
	}
	if x.dns {
		for _, d := range peer.DNSNames {
			b.WriteString(";DNS=")
			b.WriteString(d)
		}
	}
	return b.String()
}
