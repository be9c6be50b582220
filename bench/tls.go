package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// pairPKI is the throw-away PKI of a TLS sidecar pair: one CA, a server
// certificate for the server-side proxy (SAN "server") and a client
// certificate for the client-side one, all ECDSA P-256 like Weft's
// workload certificates, so the pairs compare at the same key type.
type pairPKI struct {
	CA, ServerCert, ServerKey, ClientCert, ClientKey string // PEM files
	ServerBundle, ClientBundle                       string // cert + key in one file (HAProxy)
}

const pairSNI = "server"

func newPairPKI(dir string) (*pairPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench pair CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	caCert, _ := x509.ParseCertificate(caDER)
	p := &pairPKI{CA: filepath.Join(dir, "ca.pem")}
	if err := writePEM(p.CA, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage, dns []string) (cert, key, bundle string, err error) {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return "", "", "", err
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(48 * time.Hour), DNSNames: dns,
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			return "", "", "", err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(k)
		if err != nil {
			return "", "", "", err
		}
		cert, key, bundle = filepath.Join(dir, name+".pem"), filepath.Join(dir, name+"-key.pem"), filepath.Join(dir, name+"-bundle.pem")
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
		for path, b := range map[string][]byte{cert: certPEM, key: keyPEM, bundle: append(append([]byte{}, certPEM...), keyPEM...)} {
			if err := os.WriteFile(path, b, 0o600); err != nil {
				return "", "", "", err
			}
		}
		return cert, key, bundle, nil
	}
	if p.ServerCert, p.ServerKey, p.ServerBundle, err = leaf("server", 2, x509.ExtKeyUsageServerAuth, []string{pairSNI}); err != nil {
		return nil, err
	}
	if p.ClientCert, p.ClientKey, p.ClientBundle, err = leaf("client", 3, x509.ExtKeyUsageClientAuth, nil); err != nil {
		return nil, err
	}
	return p, nil
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

// checkPairTLS proves the server-side proxy of a TLS pair at addr only
// serves mutual TLS 1.3: a request with the client certificate succeeds,
// while a plaintext request and a TLS handshake without a client
// certificate get no HTTP answer. It returns what it verified.
func checkPairTLS(ctx context.Context, addr string, pki *pairPKI, p *proc, timeout time.Duration) (string, error) {
	pool := x509.NewCertPool()
	caPEM, err := os.ReadFile(pki.CA)
	if err != nil {
		return "", err
	}
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(pki.ClientCert, pki.ClientKey)
	if err != nil {
		return "", err
	}
	get := func(cfg *tls.Config) (*http.Response, error) {
		tr := &http.Transport{Proxy: nil, TLSClientConfig: cfg, DisableKeepAlives: true}
		scheme := "https"
		if cfg == nil {
			scheme = "http"
		}
		c := &http.Client{Timeout: 2 * time.Second, Transport: tr}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+"/", nil)
		req.Host = "server:8080"
		resp, err := c.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		return resp, err
	}
	mtls := &tls.Config{RootCAs: pool, ServerName: pairSNI, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13}
	deadline := time.Now().Add(timeout)
	var last error
	for {
		resp, err := get(mtls)
		if err == nil && resp.StatusCode == http.StatusOK {
			if resp.TLS == nil || resp.TLS.Version != tls.VersionTLS13 {
				return "", errors.New("answer not over TLS 1.3")
			}
			break
		}
		if err == nil {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
		last = err
		if p.exited() {
			return "", fmt.Errorf("%s exited: %v: %s", p.name, p.err, p.tail())
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("mutual TLS request not answered after %v: %v", timeout, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if resp, err := get(nil); err == nil && resp.StatusCode == http.StatusOK {
		return "", errors.New("server side answers plaintext HTTP")
	}
	if resp, err := get(&tls.Config{RootCAs: pool, ServerName: pairSNI, MinVersion: tls.VersionTLS13}); err == nil && resp.StatusCode == http.StatusOK {
		return "", errors.New("server side answers TLS without a client certificate")
	}
	if resp, err := get(&tls.Config{RootCAs: pool, ServerName: pairSNI, Certificates: []tls.Certificate{cert}, MaxVersion: tls.VersionTLS12}); err == nil && resp.StatusCode == http.StatusOK {
		return "", errors.New("server side accepts TLS 1.2")
	}
	return "server side: TLS 1.3 with client certificate answered; plaintext, no client certificate and TLS 1.2 refused", nil
}
