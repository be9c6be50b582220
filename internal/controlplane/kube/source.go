// Package kube is the control plane's Kubernetes mode: a configuration
// source that watches the API server with client-go shared informers
// (Istio's CRDs through istio.io/client-go, Services, EndpointSlices, Pods,
// Nodes (their topology labels), Namespaces, the Secrets gateways reference and the "istio" ConfigMap)
// and hands the registry the same config.Resources the directory store
// produces, so translation cannot tell the two apart.
package kube

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	networkingv1 "istio.io/client-go/pkg/apis/networking/v1"
	istioclient "istio.io/client-go/pkg/clientset/versioned"
	istioinformers "istio.io/client-go/pkg/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/weftmesh/weft/internal/config"
)

// DefaultSystemNamespace is where the control plane and its "istio"
// ConfigMap live, as in Istio.
const DefaultSystemNamespace = "istio-system"

// Options configure a Source.
type Options struct {
	Config *rest.Config
	// SystemNamespace holds the "istio" MeshConfig ConfigMap (default
	// istio-system).
	SystemNamespace string
	Logger          *slog.Logger
	// OnChange is called, without locks held, after the served resources
	// changed. It must not block for long.
	OnChange func()
	// SyncTimeout bounds the wait for the initial lists (default 1m).
	SyncTimeout time.Duration
}

// Source serves config and registry objects from the API server. Its
// methods are safe for concurrent use.
type Source struct {
	opts   Options
	log    *slog.Logger
	client kubernetes.Interface
	istio  istioclient.Interface
	stop   chan struct{}
	once   sync.Once

	mu      sync.Mutex
	items   map[config.Key]*item
	gen     uint64
	secrets map[string]chan struct{} // credential name -> stop of its watch
	synced  []cache.InformerSynced
	subs    []chan struct{} // kicked (non-blocking) on every change
}

// Subscribe returns a channel that receives (coalesced) after changes.
func (s *Source) Subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.subs = append(s.subs, ch)
	s.mu.Unlock()
	return ch
}

// item is one object: served when errs is empty.
type item struct {
	res  *config.Resource
	errs []string
}

// New connects, starts the informers and waits for their first lists.
func New(ctx context.Context, opts Options) (*Source, error) {
	if opts.Config == nil {
		return nil, errors.New("kube: no client config")
	}
	if opts.SystemNamespace == "" {
		opts.SystemNamespace = DefaultSystemNamespace
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SyncTimeout <= 0 {
		opts.SyncTimeout = time.Minute
	}
	cfg := rest.CopyConfig(opts.Config)
	if cfg.UserAgent == "" {
		cfg.UserAgent = "weft-control-plane"
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kube client: %w", err)
	}
	ic, err := istioclient.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("istio client: %w", err)
	}
	s := &Source{
		opts: opts, log: opts.Logger, client: client, istio: ic, stop: make(chan struct{}),
		items: map[config.Key]*item{}, secrets: map[string]chan struct{}{},
	}
	kf := informers.NewSharedInformerFactory(client, 0)
	sysf := informers.NewSharedInformerFactoryWithOptions(client, 0,
		informers.WithNamespace(opts.SystemNamespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + config.MeshConfigMapName }))
	isf := istioinformers.NewSharedInformerFactory(ic, 0)

	pods := kf.Core().V1().Pods().Informer()
	if err := pods.SetTransform(trimPod); err != nil {
		return nil, err
	}
	nodes := kf.Core().V1().Nodes().Informer()
	if err := nodes.SetTransform(trimNode); err != nil {
		return nil, err
	}
	all := []cache.SharedIndexInformer{
		nodes,
		kf.Core().V1().Services().Informer(),
		kf.Discovery().V1().EndpointSlices().Informer(),
		pods,
		kf.Core().V1().Namespaces().Informer(),
		isf.Networking().V1().VirtualServices().Informer(),
		isf.Networking().V1().DestinationRules().Informer(),
		isf.Networking().V1().Gateways().Informer(),
		isf.Networking().V1().ServiceEntries().Informer(),
		isf.Networking().V1().WorkloadEntries().Informer(),
		isf.Networking().V1().WorkloadGroups().Informer(),
		isf.Networking().V1().Sidecars().Informer(),
		isf.Security().V1().PeerAuthentications().Informer(),
		isf.Security().V1().RequestAuthentications().Informer(),
		isf.Security().V1().AuthorizationPolicies().Informer(),
		isf.Telemetry().V1().Telemetries().Informer(),
	}
	for _, inf := range all {
		if _, err := inf.AddEventHandler(s.handler()); err != nil {
			return nil, err
		}
		s.synced = append(s.synced, inf.HasSynced)
	}
	cm := sysf.Core().V1().ConfigMaps().Informer()
	if _, err := cm.AddEventHandler(s.handler()); err != nil {
		return nil, err
	}
	s.synced = append(s.synced, cm.HasSynced)

	kf.Start(s.stop)
	sysf.Start(s.stop)
	isf.Start(s.stop)
	if err := s.waitSynced(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// waitSynced waits for every informer, including secret watches started
// while the gateways were listed.
func (s *Source) waitSynced(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.opts.SyncTimeout)
	defer cancel()
	for {
		s.mu.Lock()
		synced := slices.Clone(s.synced)
		s.mu.Unlock()
		if !cache.WaitForCacheSync(ctx.Done(), synced...) {
			return fmt.Errorf("kube: informers not synced within %v (is the API server reachable, are Istio's CRDs installed?)", s.opts.SyncTimeout)
		}
		s.mu.Lock()
		n := len(s.synced)
		s.mu.Unlock()
		if n == len(synced) {
			return nil
		}
	}
}

// Client returns the Kubernetes clientset the source uses.
func (s *Source) Client() kubernetes.Interface { return s.client }

// Watch blocks until ctx ends, then stops the informers.
func (s *Source) Watch(ctx context.Context) error {
	select {
	case <-ctx.Done():
	case <-s.stop:
	}
	s.Close()
	return nil
}

// Close stops every informer.
func (s *Source) Close() {
	s.once.Do(func() {
		s.mu.Lock()
		for name, stop := range s.secrets {
			close(stop)
			delete(s.secrets, name)
		}
		s.mu.Unlock()
		close(s.stop)
	})
}

// Generation counts changes of the served resources.
func (s *Source) Generation() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.gen
}

// Resources returns every valid object, sorted by kind, namespace, name.
// The resources are shared with the informer caches: read only.
func (s *Source) Resources() []*config.Resource {
	s.mu.Lock()
	out := make([]*config.Resource, 0, len(s.items))
	for _, it := range s.items {
		if len(it.errs) == 0 {
			out = append(out, it.res)
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b *config.Resource) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return out
}

// Invalid is an object the source does not serve, with why.
type Invalid struct {
	Key      config.Key
	Meta     *metav1.ObjectMeta
	Resource *config.Resource // shared with the cache: read only
	Errors   []string
}

// Invalid lists the objects rejected by validation, sorted by key.
func (s *Source) Invalid() []Invalid {
	s.mu.Lock()
	var out []Invalid
	for k, it := range s.items {
		if len(it.errs) > 0 {
			out = append(out, Invalid{Key: k, Meta: it.res.Meta, Resource: it.res, Errors: it.errs})
		}
	}
	s.mu.Unlock()
	slices.SortFunc(out, func(a, b Invalid) int { return strings.Compare(a.Key.String(), b.Key.String()) })
	return out
}

func (s *Source) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) { s.set(obj) },
		UpdateFunc: func(old, obj any) {
			if o, ok := old.(*corev1.Node); ok {
				if n, ok := obj.(*corev1.Node); ok && maps.Equal(o.Labels, n.Labels) {
					return // a Node's status heartbeat: nothing the mesh reads
				}
			}
			s.set(obj)
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			s.del(obj)
		},
	}
}

func (s *Source) set(obj any) {
	var r *config.Resource
	var errs []string
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		mr, err := meshConfigOf(o)
		if err != nil {
			errs = []string{err.Error()}
			r = &config.Resource{Kind: config.KindMeshConfig, APIVersion: "v1", Name: o.Name, Namespace: o.Namespace, Object: o, Meta: &o.ObjectMeta}
		} else if mr == nil {
			s.del(obj)
			return
		} else {
			r = mr
			r.Name, r.Namespace = o.Name, o.Namespace
		}
	default:
		var validate bool
		r, validate = resourceOf(obj)
		if r == nil {
			return
		}
		if validate {
			for _, e := range config.Validate(r) {
				errs = append(errs, e.Error())
			}
		}
	}
	k := r.Key()
	s.mu.Lock()
	old := s.items[k]
	s.items[k] = &item{res: r, errs: errs}
	s.gen++
	s.mu.Unlock()
	if len(errs) > 0 && (old == nil || !slices.Equal(old.errs, errs)) {
		s.log.Error("kubernetes object rejected; it is not served", "object", k.String(), "errors", strings.Join(errs, "; "))
	}
	s.afterChange(r.Kind)
}

func (s *Source) del(obj any) {
	var k config.Key
	switch o := obj.(type) {
	case *corev1.ConfigMap:
		k = config.Key{Kind: config.KindMeshConfig, Namespace: o.Namespace, Name: o.Name}
	default:
		r, _ := resourceOf(obj)
		if r == nil {
			return
		}
		k = r.Key()
	}
	s.mu.Lock()
	_, had := s.items[k]
	delete(s.items, k)
	s.gen++
	s.mu.Unlock()
	if had {
		s.afterChange(k.Kind)
	}
}

func (s *Source) afterChange(kind config.Kind) {
	if kind == config.KindGateway || kind == config.KindDestinationRule {
		s.watchSecrets()
	}
	s.mu.Lock()
	for _, ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	s.mu.Unlock()
	if s.opts.OnChange != nil {
		s.opts.OnChange()
	}
}

// watchSecrets keeps one watch per credential name that a Gateway or
// DestinationRule references, across namespaces by field selector, so
// the control plane never lists or caches other Secrets. Which proxy gets
// which Secret is decided at translation, by the proxy's own namespace.
func (s *Source) watchSecrets() {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]bool{}
	for _, it := range s.items {
		switch o := it.res.Object.(type) {
		case *networkingv1.Gateway:
			for _, srv := range o.Spec.GetServers() {
				if n := srv.GetTls().GetCredentialName(); n != "" {
					want[n] = true
				}
			}
		case *networkingv1.DestinationRule:
			if n := o.Spec.GetTrafficPolicy().GetTls().GetCredentialName(); n != "" {
				want[n] = true
			}
			for _, ss := range o.Spec.GetSubsets() {
				if n := ss.GetTrafficPolicy().GetTls().GetCredentialName(); n != "" {
					want[n] = true
				}
			}
			for _, ps := range o.Spec.GetTrafficPolicy().GetPortLevelSettings() {
				if n := ps.GetTls().GetCredentialName(); n != "" {
					want[n] = true
				}
			}
		}
	}
	select {
	case <-s.stop:
		return
	default:
	}
	for name, stop := range s.secrets {
		if !want[name] {
			close(stop)
			delete(s.secrets, name)
			for k := range s.items {
				if k.Kind == config.KindSecret && k.Name == name {
					delete(s.items, k)
				}
			}
		}
	}
	for name := range want {
		if _, ok := s.secrets[name]; ok {
			continue
		}
		stop := make(chan struct{})
		s.secrets[name] = stop
		f := informers.NewSharedInformerFactoryWithOptions(s.client, 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = "metadata.name=" + name }))
		inf := f.Core().V1().Secrets().Informer()
		inf.AddEventHandler(s.secretHandler(name, stop))
		s.synced = append(s.synced, inf.HasSynced)
		f.Start(stop)
	}
}

// secretHandler ignores events of a watch that was stopped (its name is no
// longer referenced) so a late event cannot bring a Secret back.
func (s *Source) secretHandler(name string, stop chan struct{}) cache.ResourceEventHandler {
	live := func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.secrets[name] == stop
	}
	h := s.handler().(cache.ResourceEventHandlerFuncs)
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if live() {
				h.AddFunc(obj)
			}
		},
		UpdateFunc: func(o, n any) {
			if live() {
				h.UpdateFunc(o, n)
			}
		},
		DeleteFunc: func(obj any) {
			if live() {
				h.DeleteFunc(obj)
			}
		},
	}
}
