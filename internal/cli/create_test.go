package cli

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writePair(t *testing.T, dir, name string) (certFile, keyFile string) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}), 0o600)
	return certFile, keyFile
}

func TestCreateSecretTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := writePair(t, dir, "httpbin.example.com")
	_, otherKey := writePair(t, dir, "other.example.com")
	var out, errb bytes.Buffer
	if code := Main([]string{"create", "secret", "tls", "httpbin-credential", "--cert", cert, "--key", key, "--cacert", cert, "-n", "istio-system", "--dry-run"}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	certPEM, _ := os.ReadFile(cert)
	for _, want := range []string{"kind: Secret", "name: httpbin-credential", "namespace: istio-system", "type: kubernetes.io/tls",
		"tls.crt: " + base64.StdEncoding.EncodeToString(certPEM), "tls.key: ", "ca.crt: "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("missing %q in:\n%s", want, out.String())
		}
	}
	// A key that is not the certificate's is refused before anything is sent.
	errb.Reset()
	if code := Main([]string{"create", "secret", "tls", "x", "--cert", cert, "--key", otherKey, "--dry-run"}, nil, &out, &errb); code == 0 || !strings.Contains(errb.String(), "--cert/--key") {
		t.Errorf("mismatched key: exit %d: %s", code, errb.String())
	}
	errb.Reset()
	if code := Main([]string{"create", "secret", "tls", "x", "--cert", cert, "--key", key, "--cacert", key, "--dry-run"}, nil, &out, &errb); code == 0 {
		t.Errorf("a key as --cacert accepted")
	}
}
