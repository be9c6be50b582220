package inject

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/weftmesh/weft/internal/meshtls"
)

// Port is the webhook's port, as istiod's.
const Port = 15017

// maxReview bounds an AdmissionReview body (the apiserver's own request
// limit is 3 MiB for objects).
const maxReview = 6 << 20

// Webhook is the injection webhook's HTTP handler (POST /inject, Istio's
// path). It is safe for concurrent use; Config must not change after the
// first request. Live, when set, replaces Config: the injector ConfigMap
// applied over it, following edits.
type Webhook struct {
	Config *Config
	Live   *LiveConfig
	Log    *slog.Logger
}

func (w *Webhook) config() *Config {
	if w.Live != nil {
		return w.Live.Current()
	}
	return w.Config
}

func (w *Webhook) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(rw, "POST an AdmissionReview", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxReview+1))
	if err != nil || len(body) > maxReview {
		http.Error(rw, "bad or oversized body", http.StatusBadRequest)
		return
	}
	var review admissionv1.AdmissionReview
	if err := json.Unmarshal(body, &review); err != nil || review.Request == nil {
		http.Error(rw, "not an AdmissionReview", http.StatusBadRequest)
		return
	}
	resp := w.Review(review.Request)
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	if out.APIVersion == "" {
		out.APIVersion, out.Kind = "admission.k8s.io/v1", "AdmissionReview"
	}
	rw.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(rw).Encode(out)
}

// Review answers one admission request: the JSON patch that injects the
// sidecar, no patch when the pod is not selected, or a refusal naming the
// invalid annotation.
func (w *Webhook) Review(req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create {
		return resp
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		return deny(resp, fmt.Errorf("decoding pod: %w", err))
	}
	if pod.Namespace == "" {
		pod.Namespace = req.Namespace
	}
	cfg := w.config()
	ok, err := Required(cfg, &pod)
	if err != nil {
		return deny(resp, err)
	}
	if !ok {
		return resp
	}
	mutated, err := Inject(cfg, &pod)
	if err != nil {
		return deny(resp, fmt.Errorf("injecting %s/%s: %w", pod.Namespace, first(pod.Name, pod.GenerateName), err))
	}
	patch, err := Patch(&pod, mutated)
	if err != nil {
		return deny(resp, err)
	}
	pt := admissionv1.PatchTypeJSONPatch
	resp.Patch, resp.PatchType = patch, &pt
	if w.Log != nil {
		w.Log.Debug("injected", "namespace", pod.Namespace, "pod", first(pod.Name, pod.GenerateName))
	}
	return resp
}

func deny(resp *admissionv1.AdmissionResponse, err error) *admissionv1.AdmissionResponse {
	resp.Allowed = false
	resp.Result = &metav1.Status{Status: metav1.StatusFailure, Message: err.Error(), Reason: metav1.StatusReasonInvalid, Code: http.StatusUnprocessableEntity}
	return resp
}

// CertSource issues the webhook's serving certificate (Weft's CA).
type CertSource interface {
	ServingCert(hosts []string, id meshtls.Identity, ttl time.Duration) (*tls.Certificate, error)
}

// ServingConfig is a TLS config whose certificate comes from src for
// hosts, reissued when half its lifetime has passed.
func ServingConfig(src CertSource, hosts []string, ttl time.Duration, now func() time.Time) *tls.Config {
	if now == nil {
		now = time.Now
	}
	var mu sync.Mutex
	var cur *tls.Certificate
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			mu.Lock()
			defer mu.Unlock()
			if cur == nil || now().After(cur.Leaf.NotBefore.Add(cur.Leaf.NotAfter.Sub(cur.Leaf.NotBefore)/2)) {
				c, err := src.ServingCert(hosts, meshtls.Identity{}, ttl)
				if err != nil {
					return nil, fmt.Errorf("issuing webhook certificate: %w", err)
				}
				cur = c
			}
			return cur, nil
		},
	}
}

// Serve runs the webhook over TLS on ln until ctx ends.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, cfg *tls.Config) error {
	mux := http.NewServeMux()
	mux.Handle("/inject", h)
	mux.Handle("/inject/", h)
	srv := &http.Server{Handler: mux, TLSConfig: cfg, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	err := srv.ServeTLS(ln, "", "")
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// WebhookName is the MutatingWebhookConfiguration's name for a revision.
func WebhookName(revision string) string {
	if revision == "" || revision == "default" {
		return "istio-sidecar-injector"
	}
	return "istio-sidecar-injector-" + revision
}

// Webhooks is the MutatingWebhookConfiguration calling client for pod
// creations, with Istio's three selectors (see NamespaceSelected).
// client is a Service reference or a URL; caBundle may be nil (the leader
// fills it in with PatchCABundle).
func Webhooks(revision string, client admissionregv1.WebhookClientConfig) *admissionregv1.MutatingWebhookConfiguration {
	rev := revisionOrDefault(revision)
	fail := admissionregv1.Fail
	none := admissionregv1.SideEffectClassNone
	never := admissionregv1.NeverReinvocationPolicy
	notFalse := &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "sidecar.istio.io/inject", Operator: metav1.LabelSelectorOpNotIn, Values: []string{"false"}}}}
	hook := func(name string, ns, obj *metav1.LabelSelector) admissionregv1.MutatingWebhook {
		return admissionregv1.MutatingWebhook{
			Name: name, ClientConfig: client,
			Rules: []admissionregv1.RuleWithOperations{{Operations: []admissionregv1.OperationType{admissionregv1.Create},
				Rule: admissionregv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector: ns, ObjectSelector: obj,
			FailurePolicy: &fail, SideEffects: &none, ReinvocationPolicy: &never,
			AdmissionReviewVersions: []string{"v1"}, TimeoutSeconds: ptr(int32(10)),
		}
	}
	var hooks []admissionregv1.MutatingWebhook
	if rev == "default" {
		hooks = append(hooks, hook("namespace.sidecar-injector.istio.io",
			&metav1.LabelSelector{MatchLabels: map[string]string{NamespaceLabel: "enabled"}}, notFalse))
	}
	hooks = append(hooks, hook("rev.namespace.sidecar-injector.istio.io",
		&metav1.LabelSelector{MatchLabels: map[string]string{RevisionLabel: rev},
			MatchExpressions: []metav1.LabelSelectorRequirement{{Key: NamespaceLabel, Operator: metav1.LabelSelectorOpDoesNotExist}}}, notFalse))
	if rev == "default" {
		hooks = append(hooks, hook("object.sidecar-injector.istio.io",
			&metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{
				{Key: NamespaceLabel, Operator: metav1.LabelSelectorOpDoesNotExist},
				{Key: RevisionLabel, Operator: metav1.LabelSelectorOpDoesNotExist}}},
			&metav1.LabelSelector{MatchLabels: map[string]string{"sidecar.istio.io/inject": "true"}}))
	}
	return &admissionregv1.MutatingWebhookConfiguration{
		TypeMeta:   metav1.TypeMeta{APIVersion: "admissionregistration.k8s.io/v1", Kind: "MutatingWebhookConfiguration"},
		ObjectMeta: metav1.ObjectMeta{Name: WebhookName(revision), Labels: map[string]string{"app": "sidecar-injector", RevisionLabel: rev}},
		Webhooks:   hooks,
	}
}

// PatchCABundle sets caBundle on every webhook of the named configuration
// when it differs (the leader calls it at start and when the bundle
// changes). A missing configuration is not an error: nothing to keep.
func PatchCABundle(ctx context.Context, client kubernetes.Interface, name string, bundle []byte) error {
	api := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	mwc, err := api.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		if isNotFound(err) {
			return nil
		}
		return fmt.Errorf("reading webhook configuration %s: %w", name, err)
	}
	changed := false
	for i := range mwc.Webhooks {
		if !bytes.Equal(mwc.Webhooks[i].ClientConfig.CABundle, bundle) {
			mwc.Webhooks[i].ClientConfig.CABundle = bundle
			changed = true
		}
	}
	if !changed {
		return nil
	}
	if _, err := api.Update(ctx, mwc, metav1.UpdateOptions{}); err != nil {
		return fmt.Errorf("updating caBundle of %s: %w", name, err)
	}
	return nil
}

func isNotFound(err error) bool { return apierrors.IsNotFound(err) }
