package kube

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"

	"github.com/weftmesh/weft/internal/config"
)

// statusGVR maps the Istio kinds the control plane serves to their API
// resources.
var statusGVR = map[config.Kind]schema.GroupVersionResource{
	config.KindVirtualService:        {Group: "networking.istio.io", Version: "v1", Resource: "virtualservices"},
	config.KindDestinationRule:       {Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"},
	config.KindGateway:               {Group: "networking.istio.io", Version: "v1", Resource: "gateways"},
	config.KindServiceEntry:          {Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"},
	config.KindWorkloadEntry:         {Group: "networking.istio.io", Version: "v1", Resource: "workloadentries"},
	config.KindSidecar:               {Group: "networking.istio.io", Version: "v1", Resource: "sidecars"},
	config.KindPeerAuthentication:    {Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"},
	config.KindRequestAuthentication: {Group: "security.istio.io", Version: "v1", Resource: "requestauthentications"},
	config.KindAuthorizationPolicy:   {Group: "security.istio.io", Version: "v1", Resource: "authorizationpolicies"},
	config.KindTelemetry:             {Group: "telemetry.istio.io", Version: "v1", Resource: "telemetries"},
}

// condition is Istio's IstioCondition as JSON.
type condition struct {
	Type               string `json:"type"`
	Status             string `json:"status"`
	Reason             string `json:"reason"`
	Message            string `json:"message,omitempty"`
	LastTransitionTime string `json:"lastTransitionTime"`
	ObservedGeneration int64  `json:"observedGeneration"`
}

// validationMessage is Istio's AnalysisMessageBase as JSON (what
// istiod's analysis controller writes into status.validationMessages):
// the code, the level in capitals and the code's documentation page. The
// text is not part of it: `weft analyze -k` prints it.
type validationMessage struct {
	Type struct {
		Name string `json:"name,omitempty"`
		Code string `json:"code"`
	} `json:"type"`
	Level            string `json:"level"`
	DocumentationURL string `json:"documentationUrl,omitempty"`
}

// statusDebounce coalesces bursts of changes (our own status writes come
// back as updates) before the analyzers run again.
const statusDebounce = 100 * time.Millisecond

// analysisMessages runs Weft's analyzers (those of `weft analyze`) over
// the served config, plus schema validation of the refused objects, and
// returns the messages by the object they are about.
func analysisMessages(src *Source) map[string][]validationMessage {
	var rs []*config.Resource
	for _, r := range src.Resources() {
		// Pods are workloads that selectors pick; endpoints and nodes are
		// the registry's alone.
		if r.Kind != config.KindEndpointSlice && r.Kind != config.KindNode {
			rs = append(rs, r)
		}
	}
	// The source watches every Secret a credentialName names, so one
	// missing from it does not exist.
	msgs := config.Analyze(rs, config.AnalyzeOptions{SecretsComplete: true})
	for _, inv := range src.Invalid() {
		if inv.Resource != nil && inv.Resource.Spec != nil {
			msgs = append(msgs, config.ErrorMessages(config.Validate(inv.Resource))...)
		}
	}
	out := map[string][]validationMessage{}
	for _, m := range msgs {
		if m.Origin == "" {
			continue
		}
		var v validationMessage
		v.Type.Code, v.Type.Name = m.Code, m.Name
		v.Level = strings.ToUpper(m.Level.String())
		v.DocumentationURL = m.DocURL()
		out[m.Origin] = append(out[m.Origin], v)
	}
	return out
}

// WriteStatus keeps Istio's status on every Istio object the source
// holds, until ctx ends (the leader runs it): observedGeneration; a
// Reconciled condition that is True when the control plane serves the
// object and False, with the validation errors, when it refuses it; and
// validationMessages, the analyzers' findings about the object (Istio's
// codes, such as IST0101), so `kubectl get vs -o yaml` says why a
// resource is not in effect or not as meant. Only changes are written (an
// object's own status write is not a change); a new leader writes every
// object once.
func WriteStatus(ctx context.Context, src *Source, dyn dynamic.Interface, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kick := src.Subscribe()
	written := map[config.Key]string{} // what was last written, by object
	for {
		seen := map[config.Key]bool{}
		messages := analysisMessages(src)
		write := func(r *config.Resource, errs []string) {
			gvr, ok := statusGVR[r.Kind]
			if !ok || r.Meta == nil {
				return
			}
			k := r.Key()
			seen[k] = true
			c := condition{Type: "Reconciled", Status: "True", Reason: "Accepted", ObservedGeneration: r.Meta.Generation}
			if len(errs) > 0 {
				c.Status, c.Reason, c.Message = "False", "Invalid", strings.Join(errs, "; ")
			}
			msgs := messages[fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name)]
			mj, _ := json.Marshal(msgs)
			// Not the resourceVersion: our own write moves it.
			sig := fmt.Sprintf("%s|%d|%s|%s|%s", r.Meta.UID, c.ObservedGeneration, c.Status, c.Message, mj)
			if written[k] == sig {
				return
			}
			c.LastTransitionTime = time.Now().UTC().Format(time.RFC3339)
			st := map[string]any{
				"observedGeneration": c.ObservedGeneration,
				"conditions":         []condition{c},
				"validationMessages": nil, // null: a merge patch removes stale ones
			}
			if len(msgs) > 0 {
				st["validationMessages"] = msgs
			}
			patch, _ := json.Marshal(map[string]any{"status": st})
			_, err := dyn.Resource(gvr).Namespace(r.Namespace).Patch(ctx, r.Name, types.MergePatchType, patch, metav1.PatchOptions{FieldManager: "weft-control-plane"}, "status")
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("writing status", "object", k.String(), "err", err)
				}
				return
			}
			written[k] = sig
		}
		for _, r := range src.Resources() {
			write(r, nil)
		}
		for _, inv := range src.Invalid() {
			if inv.Resource != nil {
				write(inv.Resource, inv.Errors)
			}
		}
		for k := range written {
			if !seen[k] {
				delete(written, k)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-kick:
		}
		t := time.NewTimer(statusDebounce)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}
