package kube

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/weftmesh/weft/internal/controlplane/ca"
)

// Istio's names for the CA's Secrets and the published root.
const (
	CASecret     = "istio-ca-secret" // the self-signed root the control plane generated
	PluginSecret = "cacerts"         // an operator's plug-in CA, preferred when present
	RootCertMap  = "istio-ca-root-cert"
	RootCertKey  = "root-cert.pem"
)

// CAFiles writes the CA key material to dir (mode 0700) in the plug-in
// layout ca.Options.PluginDir reads, so every replica signs with one root.
// It takes Istio's plug-in "cacerts" Secret if there is one, else
// "istio-ca-secret", creating that with a new self-signed root when it is
// missing. Creation is an atomic Create: when replicas race, one root wins
// and the others read it.
func CAFiles(ctx context.Context, client kubernetes.Interface, namespace, trustDomain, dir string) (string, error) {
	secrets := client.CoreV1().Secrets(namespace)
	s, err := secrets.Get(ctx, PluginSecret, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		s, err = secrets.Get(ctx, CASecret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			var created *corev1.Secret
			if created, err = newRootSecret(namespace, trustDomain); err == nil {
				s, err = secrets.Create(ctx, created, metav1.CreateOptions{})
				if apierrors.IsAlreadyExists(err) {
					s, err = secrets.Get(ctx, CASecret, metav1.GetOptions{})
				}
			}
		}
	}
	if err != nil {
		return "", fmt.Errorf("CA secret: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return "", err
	}
	for _, k := range []string{ca.PluginCert, ca.PluginKey, ca.PluginRoot} {
		v := s.Data[k]
		if len(v) == 0 && k == ca.PluginRoot {
			v = s.Data[ca.PluginCert] // a self-signed root is its own root
		}
		if len(v) == 0 {
			return "", fmt.Errorf("CA secret %s/%s has no %s", namespace, s.Name, k)
		}
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			return "", err
		}
	}
	if v := s.Data[ca.PluginChain]; len(v) > 0 {
		if err := os.WriteFile(filepath.Join(dir, ca.PluginChain), v, 0o600); err != nil {
			return "", err
		}
	}
	return dir, nil
}

func newRootSecret(namespace, trustDomain string) (*corev1.Secret, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{trustDomain}, CommonName: "Weft root CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: CASecret, Namespace: namespace},
		Type:       "istio.io/ca-root",
		Data: map[string][]byte{
			ca.PluginCert: cert,
			ca.PluginKey:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}),
			ca.PluginRoot: cert,
		},
	}, nil
}

// PublishRoot keeps the istio-ca-root-cert ConfigMap, holding the trust
// bundle, in every namespace until ctx ends (the leader runs it, as Istio's
// namespace controller). bundle is read on every pass; changed wakes it
// when the bundle changes.
func PublishRoot(ctx context.Context, client kubernetes.Interface, bundle func() []byte, changed <-chan struct{}, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := informers.NewSharedInformerFactory(client, 0)
	nsInf := f.Core().V1().Namespaces().Informer()
	kick := make(chan struct{}, 1)
	poke := func(any) {
		select {
		case kick <- struct{}{}:
		default:
		}
	}
	nsInf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: poke})
	f.Start(ctx.Done())
	defer f.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), nsInf.HasSynced) {
		return
	}
	poke(nil)
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		case <-kick:
		}
		root := string(bundle())
		for _, o := range nsInf.GetStore().List() {
			ns := o.(*corev1.Namespace)
			if ns.Status.Phase == corev1.NamespaceTerminating {
				continue
			}
			if err := putRootCert(ctx, client, ns.Name, root); err != nil && ctx.Err() == nil {
				log.Warn("publishing the root certificate", "namespace", ns.Name, "err", err)
			}
		}
	}
}

func putRootCert(ctx context.Context, client kubernetes.Interface, ns, root string) error {
	cms := client.CoreV1().ConfigMaps(ns)
	cur, err := cms.Get(ctx, RootCertMap, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		_, err = cms.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Name: RootCertMap, Labels: map[string]string{"istio.io/config": "true"}},
			Data:       map[string]string{RootCertKey: root},
		}, metav1.CreateOptions{})
		if apierrors.IsAlreadyExists(err) {
			return nil // another pass created it; the next pass checks content
		}
		return err
	}
	if err != nil || cur.Data[RootCertKey] == root {
		return err
	}
	cur = cur.DeepCopy()
	if cur.Data == nil {
		cur.Data = map[string]string{}
	}
	cur.Data[RootCertKey] = root
	_, err = cms.Update(ctx, cur, metav1.UpdateOptions{})
	return err
}
