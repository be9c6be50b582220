package hcm

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"net/http"
	"net/url"
	"strings"
	"testing"

	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/proxy/downstream"
)

func TestXFCC(t *testing.T) {
	curl, _ := url.Parse("spiffe://cluster.local/ns/foo/sa/curl")
	own, _ := url.Parse("spiffe://cluster.local/ns/foo/sa/httpbin")
	peer := &x509.Certificate{Raw: []byte("peer-der"), URIs: []*url.URL{curl}, DNSNames: []string{"curl.foo"}}
	sum := sha256.Sum256(peer.Raw)
	hash := hex.EncodeToString(sum[:])
	mtls := &conn{info: &downstream.Info{
		TLS:       &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}, VerifiedChains: [][]*x509.Certificate{{peer}}},
		LocalCert: &x509.Certificate{URIs: []*url.URL{own}},
	}}
	unverified := &conn{info: &downstream.Info{TLS: &tls.ConnectionState{PeerCertificates: []*x509.Certificate{peer}}}}
	plain := &conn{info: &downstream.Info{}}
	cur := "By=" + own.String() + ";Hash=" + hash + `;Subject="";URI=` + curl.String() + ";DNS=curl.foo"
	const prior = "By=spiffe://x;URI=spiffe://cluster.local/ns/foo/sa/admin"

	cases := []struct {
		name string
		mode hcmv3.HttpConnectionManager_ForwardClientCertDetails
		cc   *conn
		want string // "" = header absent
	}{
		{"sanitize default, mTLS", hcmv3.HttpConnectionManager_SANITIZE, mtls, ""},
		{"append, mTLS", hcmv3.HttpConnectionManager_APPEND_FORWARD, mtls, prior + "," + cur},
		{"append, plaintext forgery removed", hcmv3.HttpConnectionManager_APPEND_FORWARD, plain, ""},
		{"append, unverified certificate", hcmv3.HttpConnectionManager_APPEND_FORWARD, unverified, ""},
		{"sanitize_set, mTLS", hcmv3.HttpConnectionManager_SANITIZE_SET, mtls, cur},
		{"sanitize_set, plaintext", hcmv3.HttpConnectionManager_SANITIZE_SET, plain, ""},
		{"forward_only, mTLS", hcmv3.HttpConnectionManager_FORWARD_ONLY, mtls, prior},
		{"forward_only, plaintext", hcmv3.HttpConnectionManager_FORWARD_ONLY, plain, ""},
		{"always_forward_only, plaintext", hcmv3.HttpConnectionManager_ALWAYS_FORWARD_ONLY, plain, prior},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var m Manager
			cfg := &hcmv3.HttpConnectionManager{ForwardClientCertDetails: c.mode,
				SetCurrentClientCertDetails: &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Subject: wrapperspb.Bool(true), Uri: true, Dns: true}}
			if err := m.compileXFCC(cfg, "hcm"); err != nil {
				t.Fatal(err)
			}
			h := http.Header{xfccHeader: {prior}}
			m.xfcc.apply(h, c.cc)
			if got := strings.Join(h.Values(xfccHeader), ","); got != c.want {
				t.Errorf("XFCC %q, want %q", got, c.want)
			}
		})
	}
}

func TestXFCCSubjectAndNACK(t *testing.T) {
	peer := &x509.Certificate{Raw: []byte("x"), Subject: pkix.Name{CommonName: "client", Organization: []string{"Acme"}}}
	x := xfccConfig{subject: true}
	cc := &conn{info: &downstream.Info{}}
	if got := x.element(peer, cc); !strings.HasSuffix(got, `;Subject="CN=client,O=Acme"`) {
		t.Errorf("element %q", got)
	}
	var m Manager
	err := m.compileXFCC(&hcmv3.HttpConnectionManager{SetCurrentClientCertDetails: &hcmv3.HttpConnectionManager_SetCurrentClientCertDetails{Cert: true}}, "hcm")
	if err == nil || !strings.Contains(err.Error(), "cert") {
		t.Errorf("set_current_client_cert_details.cert not NACKed: %v", err)
	}
}
