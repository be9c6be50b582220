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

// WriteStatus keeps Istio's status on every Istio object the source
// holds, until ctx ends (the leader runs it): observedGeneration, and a
// Reconciled condition that is True when the control plane serves the
// object and False, with the validation errors, when it refuses it, so
// `kubectl get vs -o yaml` says why a resource is not in effect. Only
// changes are written; a new leader writes every object once.
func WriteStatus(ctx context.Context, src *Source, dyn dynamic.Interface, log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	kick := src.Subscribe()
	written := map[config.Key]string{} // what was last written, by object
	for {
		seen := map[config.Key]bool{}
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
			// Not the resourceVersion: our own write moves it.
			sig := fmt.Sprintf("%s|%d|%s|%s", r.Meta.UID, c.ObservedGeneration, c.Status, c.Message)
			if written[k] == sig {
				return
			}
			c.LastTransitionTime = time.Now().UTC().Format(time.RFC3339)
			patch, _ := json.Marshal(map[string]any{"status": map[string]any{
				"observedGeneration": c.ObservedGeneration,
				"conditions":         []condition{c},
			}})
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
	}
}
