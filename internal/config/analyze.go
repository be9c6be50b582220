package config

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
)

// Level is a message's severity, as in istioctl analyze.
type Level int

const (
	LevelInfo Level = iota
	LevelWarning
	LevelError
)

func (l Level) String() string {
	switch l {
	case LevelInfo:
		return "Info"
	case LevelWarning:
		return "Warning"
	}
	return "Error"
}

// ParseLevel reads "Info", "Warning" or "Error" (any case).
func ParseLevel(s string) (Level, error) {
	switch strings.ToLower(s) {
	case "info":
		return LevelInfo, nil
	case "warning", "warn":
		return LevelWarning, nil
	case "error":
		return LevelError, nil
	}
	return LevelError, fmt.Errorf("unknown level %q (Info, Warning or Error)", s)
}

// msgType is one kind of analysis message. Codes, names, levels and
// templates are Istio's (pkg/config/analysis/msg/messages.yaml), so users
// can look them up in Istio's "Configuration Analysis Messages" docs.
type msgType struct {
	code, name string
	level      Level
	template   string
}

var (
	msgSchemaValidation = msgType{"IST0106", "SchemaValidationError", LevelError, "Schema validation error: %s"}
	msgSchemaWarning    = msgType{"IST0133", "SchemaWarning", LevelWarning, "Schema validation warning: %s"}
	msgRefNotFound      = msgType{"IST0101", "ReferencedResourceNotFound", LevelError, "Referenced %s not found: %q"}
	msgMeshVSConflict   = msgType{"IST0109", "ConflictingMeshGatewayVirtualServiceHosts", LevelError,
		"The VirtualServices %s associated with mesh gateway define the same host %s which can lead to undefined behavior. This can be fixed by merging the conflicting VirtualServices into a single resource."}
	msgSidecarSelectorConflict = msgType{"IST0110", "ConflictingSidecarWorkloadSelectors", LevelError,
		"The Sidecars %v in namespace %q select the same workload pod %q, which can lead to undefined behavior."}
	msgSidecarsNoSelector = msgType{"IST0111", "MultipleSidecarsWithoutWorkloadSelectors", LevelError,
		"The Sidecars %v in namespace %q have no workload selector, which can lead to undefined behavior."}
	msgPortSelectorRequired = msgType{"IST0112", "VirtualServiceDestinationPortSelectorRequired", LevelError,
		"This VirtualService routes to a service %q that exposes multiple ports %v. Specifying a port in the destination is required to disambiguate."}
	msgMTLSConflict = msgType{"IST0113", "MTLSPolicyConflict", LevelError,
		"A DestinationRule and Policy are in conflict with regards to mTLS for host %s. The DestinationRule %q specifies that mTLS must be %t but the Policy object %q specifies %s."}
	msgAutoMTLSOffStrict = msgType{"WFT0010", "StrictWithoutAutoMTLS", LevelError,
		"Service %s port %d requires mutual TLS (STRICT) but MeshConfig enableAutoMtls is false and no DestinationRule sets ISTIO_MUTUAL for it: clients in the mesh send plaintext and are refused."}
	msgPortName = msgType{"IST0118", "PortNameIsNotUnderNamingConvention", LevelInfo,
		"Port name %s (port: %d, targetPort: %s) doesn't follow the naming convention of Istio port."}
	msgNoMatchingWorkloads = msgType{"IST0127", "NoMatchingWorkloadsFound", LevelWarning,
		"No matching workloads for this resource with the following labels: %s"}
	msgUnreachableRule  = msgType{"IST0130", "VirtualServiceUnreachableRule", LevelWarning, "VirtualService rule %v not used (%s)."}
	msgIneffectiveMatch = msgType{"IST0131", "VirtualServiceIneffectiveMatch", LevelInfo,
		"VirtualService rule %v match %v is not used (duplicate/overlapping match in rule %v)."}
	msgHostNotInGateway = msgType{"IST0132", "VirtualServiceHostNotFoundInGateway", LevelWarning,
		"one or more host %v defined in VirtualService %s not found in Gateway %s."}
	msgSEAddressRequired   = msgType{"IST0134", "ServiceEntryAddressesRequired", LevelWarning, "ServiceEntry addresses are required for this protocol."}
	msgConflictingGateways = msgType{"IST0145", "ConflictingGateways", LevelError,
		"Conflict with gateways %s (workload selector %s, port %s, hosts %v)."}
	msgGatewayPortNotOnService = msgType{"IST0162", "GatewayPortNotDefinedOnService", LevelWarning,
		"The gateway is listening on a target port (port %d) that is not defined in the Service associated with its workload instances (Pod selector %s). If you need to access the gateway port through the gateway Service, it will not be available."}
	msgIneffectivePolicy = msgType{"IST0167", "IneffectivePolicy", LevelWarning, "The policy has no impact: %s."}
	// Weft's own: Istio has no message for it. When several
	// DestinationRules for one host are merged, the first subset of a name
	// wins and the others are silently dropped.
	msgDuplicateSubset = msgType{"WFT0001", "DuplicateSubset", LevelWarning,
		"Subset %q of host %s is also defined by DestinationRule %s; only the first definition is used."}
	// Weft's own: an ALLOW policy without rules is Istio's "allow-nothing"
	// idiom; it is legal, but often a mistake, so it is only an Info.
	// Weft's own: an Istio (or Gateway API) kind Weft does not implement;
	// one message per kind, at the first document.
	msgUnsupportedKind = msgType{"WFT0020", "UnsupportedKind", LevelWarning, "%s (%d document%s skipped)."}
	// Weft's own: the rest of a run of one message repeated in a resource.
	msgRepeated     = msgType{"WFT0021", "RepeatedMessage", LevelInfo, "%d more %s [%s] message%s like the above in this resource not shown."}
	msgAllowNothing = msgType{"WFT0002", "AllowNothing", LevelInfo,
		"AuthorizationPolicy with action ALLOW and no rules denies every request to the workloads it selects%s."}
)

// Message is one analysis finding.
type Message struct {
	Level Level
	Code  string // e.g. IST0101
	Name  string // e.g. ReferencedResourceNotFound
	// Origin is "<Kind> <namespace>/<name>", empty when the problem is
	// outside any resource (a YAML syntax error).
	Origin string
	// Namespace is the origin resource's namespace ("" if none).
	Namespace string
	Pos       Position
	Text      string
}

// String is istioctl's text format, with Weft's file:line reference:
//
//	Error [IST0101] (VirtualService default/reviews reviews.yaml:3) Referenced host+subset in destinationrule not found: "reviews+v4"
func (m *Message) String() string {
	ref := m.Origin
	if loc := m.ref(); loc != "" {
		if ref != "" {
			ref += " "
		}
		ref += loc
	}
	return fmt.Sprintf("%s [%s] (%s) %s", m.Level, m.Code, ref, m.Text)
}

// ref is the file:line part (no column: that is what istioctl prints).
func (m *Message) ref() string {
	p := m.Pos
	p.Column = 0
	return p.String()
}

// Reference is the file:line the message points at.
func (m *Message) Reference() string { return m.ref() }

func newMessage(t msgType, r *Resource, path string, args ...any) *Message {
	m := &Message{Level: t.level, Code: t.code, Name: t.name, Text: fmt.Sprintf(t.template, args...)}
	if r != nil {
		m.Origin, m.Namespace = origin(r.Key()), r.Namespace
		m.Pos = r.PosOf(path)
	}
	return m
}

func origin(k Key) string {
	if k.Name == "" {
		k.Name = "(unnamed)"
	}
	if k.Namespace == "" {
		return fmt.Sprintf("%s %s", k.Kind, k.Name)
	}
	return fmt.Sprintf("%s %s/%s", k.Kind, k.Namespace, k.Name)
}

// DocURL is where Istio documents a message code ("" for Weft's own).
func (m *Message) DocURL() string {
	if !strings.HasPrefix(m.Code, "IST") {
		return ""
	}
	return "https://istio.io/latest/docs/reference/config/analysis/" + strings.ToLower(m.Code) + "/"
}

// ErrorMessages turns load and validation errors into IST0106 messages.
// Errors of other classes (files that could not be read as Kubernetes
// YAML, unsupported kinds) are not schema validation errors: they are
// left out (see UnsupportedMessages).
func ErrorMessages(errs []*Error) []*Message {
	out := make([]*Message, 0, len(errs))
	for _, e := range errs {
		t := msgSchemaValidation
		switch e.Class {
		case ClassSchema:
		case ClassWarning:
			t = msgSchemaWarning
		default:
			continue
		}
		m := &Message{Level: t.level, Code: t.code, Name: t.name, Pos: e.Pos}
		if e.Key.Kind != "" {
			m.Origin, m.Namespace = origin(e.Key), e.Key.Namespace
		}
		detail := e.Msg
		if e.Path != "" {
			detail = e.Path + ": " + e.Msg
		}
		m.Text = fmt.Sprintf(t.template, detail)
		out = append(out, m)
	}
	return out
}

// AnalyzeOptions tune Analyze.
type AnalyzeOptions struct {
	// Domain is the cluster DNS suffix; "cluster.local" if empty.
	Domain string
	// SecretsComplete says the set holds every Secret a credentialName
	// names, wherever it exists (the Kubernetes source watches exactly
	// those), so a credentialName without its Secret is reported even
	// when the set holds no Secret at all.
	SecretsComplete bool
}

// Analyze validates every resource (IST0106) and runs the cross-resource
// analyzers over the set. The set is taken as the whole world: a
// reference to something not in it is reported as not found, except for
// kinds the set holds none of where noted per analyzer (Secrets,
// WorkloadEntries). Messages are sorted by file, line and code.
func Analyze(res []*Resource, opts AnalyzeOptions) []*Message {
	var out []*Message
	for _, r := range res {
		errs, warns := ValidateWithWarnings(r)
		out = append(out, ErrorMessages(errs)...)
		out = append(out, ErrorMessages(warns)...)
	}
	ix := newIndex(res, opts.Domain)
	ix.secretsComplete = opts.SecretsComplete
	for _, a := range analyzers {
		out = append(out, a(ix)...)
	}
	SortMessages(out)
	return out
}

// SortMessages orders messages by file, line, code and text.
func SortMessages(ms []*Message) {
	slices.SortStableFunc(ms, func(a, b *Message) int {
		return cmp.Or(
			cmp.Compare(a.Pos.File, b.Pos.File),
			cmp.Compare(a.Pos.Line, b.Pos.Line),
			cmp.Compare(a.Code, b.Code),
			cmp.Compare(a.Text, b.Text),
		)
	})
}

var analyzers = []func(*index) []*Message{
	analyzeVirtualServices,
	analyzeMeshVSConflicts,
	analyzeDestinationRules,
	analyzeGateways,
	analyzeSidecars,
	analyzeSelectors,
	analyzeAuthorization,
	analyzeAuthzIdentity,
	analyzeMTLS,
	analyzeAutoMTLSOff,
	analyzeServices,
	analyzeServiceEntries,
	analyzeAnnotations,
}

// index is the world the analyzers look things up in.
type index struct {
	domain     string
	all        []*Resource
	byKind     map[Kind][]*Resource
	services   map[string]*service // FQDN -> service
	entries    []entryHost         // ServiceEntry hosts (may be wildcards)
	gateways   map[string]*Resource
	workloads  []workload
	namespaces map[string]bool
	secrets    map[string]bool
	// secretsComplete: secrets holds every referenced Secret that exists
	// (AnalyzeOptions.SecretsComplete); else only a set with some Secret
	// is taken as the world's.
	secretsComplete bool
	rootNS          string
	autoMTLS        bool // MeshConfig enableAutoMtls (default true)
	// DestinationRule subsets by resolved host; wildcard hosts apart.
	subsets     map[string]map[string]bool
	wildSubsets []wildSubset
}

type wildSubset struct {
	host    string
	subsets []string
}

type service struct {
	host     string
	res      *Resource
	ports    []uint32
	targets  []uint32
	selector map[string]string
}

type entryHost struct {
	host  string
	res   *Resource
	ports []uint32
}

type workload struct {
	ns     string
	name   string
	labels map[string]string
}

func newIndex(res []*Resource, domain string) *index {
	if domain == "" {
		domain = "cluster.local"
	}
	ix := &index{
		domain: domain, all: res, byKind: map[Kind][]*Resource{},
		services: map[string]*service{}, gateways: map[string]*Resource{},
		namespaces: map[string]bool{}, secrets: map[string]bool{}, rootNS: "istio-system",
		autoMTLS: true, subsets: map[string]map[string]bool{},
	}
	for _, r := range res {
		if want := kindTypes[r.Kind]; !wellTyped(r) || r.Object == nil || (want.spec != nil && r.Spec == nil) {
			continue // hand-built and incomplete: the analyzers type-assert
		}
		ix.byKind[r.Kind] = append(ix.byKind[r.Kind], r)
		if r.Namespace != "" {
			ix.namespaces[r.Namespace] = true
		}
		switch o := r.Object.(type) {
		case *corev1.Pod:
			// Kubernetes mode: pods are the workloads selectors pick.
			ix.workloads = append(ix.workloads, workload{ns: r.Namespace, name: r.Name, labels: o.Labels})
		case *corev1.Service:
			s := &service{host: fmt.Sprintf("%s.%s.svc.%s", r.Name, r.Namespace, domain), res: r, selector: o.Spec.Selector}
			for _, p := range o.Spec.Ports {
				s.ports = append(s.ports, uint32(p.Port))
				t := uint32(p.Port)
				if p.TargetPort.IntVal != 0 {
					t = uint32(p.TargetPort.IntVal)
				}
				s.targets = append(s.targets, t)
			}
			ix.services[s.host] = s
		case *corev1.Secret:
			ix.secrets[r.Namespace+"/"+r.Name] = true
		case *corev1.Namespace:
			ix.namespaces[r.Name] = true
		case *MeshConfig:
			if o.Spec != nil && o.Spec.RootNamespace != "" {
				ix.rootNS = o.Spec.RootNamespace
			}
			if o.Spec != nil && o.Spec.EnableAutoMtls != nil {
				ix.autoMTLS = o.Spec.EnableAutoMtls.GetValue()
			}
		}
		switch spec := r.Spec.(type) {
		case *networking.ServiceEntry:
			var ports []uint32
			for _, p := range spec.Ports {
				ports = append(ports, p.Number)
			}
			for _, h := range spec.Hosts {
				ix.entries = append(ix.entries, entryHost{host: ResolveHost(h, r.Namespace, domain), res: r, ports: ports})
			}
		case *networking.Gateway:
			ix.gateways[r.Namespace+"/"+r.Name] = r
		case *networking.DestinationRule:
			if spec.Host == "" {
				break
			}
			h := ResolveHost(spec.Host, r.Namespace, domain)
			if strings.HasPrefix(h, "*") {
				ws := wildSubset{host: h}
				for _, s := range spec.Subsets {
					ws.subsets = append(ws.subsets, s.Name)
				}
				ix.wildSubsets = append(ix.wildSubsets, ws)
				break
			}
			if ix.subsets[h] == nil {
				ix.subsets[h] = map[string]bool{}
			}
			for _, s := range spec.Subsets {
				ix.subsets[h][s.Name] = true
			}
		case *networking.WorkloadEntry:
			ix.workloads = append(ix.workloads, workload{ns: r.Namespace, name: r.Name, labels: spec.Labels})
		}
	}
	return ix
}

// lookupHost finds what a destination host refers to. ok is false when
// neither a Service nor a ServiceEntry provides it; ports are the
// service's ports (nil when unknown, e.g. a wildcard ServiceEntry).
func (ix *index) lookupHost(host, ns string) (fq string, ports []uint32, ok bool) {
	fq = ResolveHost(host, ns, ix.domain)
	if s, found := ix.services[fq]; found {
		return fq, s.ports, true
	}
	for _, e := range ix.entries {
		if hostSubsetOf(fq, e.host) {
			return fq, e.ports, true
		}
	}
	return fq, nil, false
}

// hasSubset reports whether the DestinationRules for host fq define a
// subset (Istio merges DestinationRules of one host).
func (ix *index) hasSubset(fq, subset string) bool {
	if ix.subsets[fq][subset] {
		return true
	}
	for _, w := range ix.wildSubsets {
		if hostSubsetOf(fq, w.host) && slices.Contains(w.subsets, subset) {
			return true
		}
	}
	return false
}

// gatewayRef resolves a VirtualService's gateway reference to "ns/name".
func gatewayRef(ref, vsNS string) string {
	if ns, name, ok := strings.Cut(ref, "/"); ok {
		if ns == "." {
			ns = vsNS
		}
		return ns + "/" + name
	}
	// Deprecated FQDN form: name.namespace.svc.cluster.local.
	if parts := strings.Split(ref, "."); len(parts) > 1 {
		return parts[1] + "/" + parts[0]
	}
	return vsNS + "/" + ref
}

// selects reports whether a selector (all of whose labels must be present)
// matches labels. An empty selector matches everything.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

func labelString(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + m[k]
	}
	return strings.Join(parts, ",")
}

// UnsupportedMessages turns the loader's unsupported-kind notices into one
// Warning per kind, at its first document, with the count of documents.
func UnsupportedMessages(errs []*Error) []*Message {
	type group struct {
		first *Error
		n     int
	}
	byKind := map[string]*group{}
	var order []string
	for _, e := range errs {
		k, _, _ := strings.Cut(e.Msg, " is ")
		g := byKind[k]
		if g == nil {
			g = &group{first: e}
			byKind[k] = g
			order = append(order, k)
		}
		g.n++
	}
	var out []*Message
	for _, k := range order {
		g := byKind[k]
		text, _, _ := strings.Cut(g.first.Msg, "; the document is skipped")
		plural := ""
		if g.n != 1 {
			plural = "s"
		}
		out = append(out, &Message{Level: msgUnsupportedKind.level, Code: msgUnsupportedKind.code, Name: msgUnsupportedKind.name,
			Pos: g.first.Pos, Text: fmt.Sprintf(msgUnsupportedKind.template, text, g.n, plural)})
	}
	return out
}

// repeatKey is a message text with list indexes and numbers blanked, so
// "rule 1 not used" and "rule 2 not used" count as one message repeated.
func repeatKey(text string) string { return digitsRE.ReplaceAllString(stripIndexes(text), "#") }

var digitsRE = regexp.MustCompile(`[0-9]+`)

// CapRepeats keeps, of the messages sharing an origin, a code and a text
// that differ only in list indexes and numbers, the first max (in order), and adds one
// Info message counting the rest: a document that repeats one mistake
// thousands of times stays readable. msgs must be sorted.
func CapRepeats(msgs []*Message, max int) []*Message {
	type key struct{ origin, file, code, text string }
	counts := map[key]int{}
	last := map[key]*Message{}
	var out []*Message
	for _, m := range msgs {
		k := key{m.Origin, m.Pos.File, m.Code, repeatKey(m.Text)}
		counts[k]++
		if counts[k] <= max {
			out = append(out, m)
			last[k] = m
		}
	}
	var extra []*Message
	for _, m := range out {
		k := key{m.Origin, m.Pos.File, m.Code, repeatKey(m.Text)}
		if n := counts[k] - max; n > 0 && last[k] == m {
			plural := ""
			if n != 1 {
				plural = "s"
			}
			extra = append(extra, &Message{Level: msgRepeated.level, Code: msgRepeated.code, Name: msgRepeated.name,
				Origin: m.Origin, Namespace: m.Namespace, Pos: m.Pos, Text: fmt.Sprintf(msgRepeated.template, n, m.Level, m.Code, plural)})
		}
	}
	if len(extra) == 0 {
		return out
	}
	// Each summary goes right after the last message it summarises.
	final := make([]*Message, 0, len(out)+len(extra))
	for _, m := range out {
		final = append(final, m)
		for _, x := range extra {
			if x.Pos == m.Pos && x.Origin == m.Origin && strings.Contains(x.Text, "["+m.Code+"]") {
				final = append(final, x)
			}
		}
	}
	return final
}
