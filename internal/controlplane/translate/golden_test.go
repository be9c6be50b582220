package translate

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"gopkg.in/yaml.v3"

	"github.com/weftmesh/weft/internal/config"
	"github.com/weftmesh/weft/internal/controlplane/model"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/meshtls"
	"github.com/weftmesh/weft/internal/node"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// goldenCase is testdata/<case>/proxies.yaml. Config comes from
// testdata/<case>/config.yaml plus the include files (relative to testdata/).
type goldenCase struct {
	Include []string      `yaml:"include"`
	Proxies []goldenProxy `yaml:"proxies"`
	// Features are istiod's feature flags for the case.
	Features struct {
		TLSOnSidecarIngress bool `yaml:"enableTLSOnSidecarIngress"`
	} `yaml:"features"`
}

// goldenProxy describes one connected proxy (node.Meta fields).
type goldenProxy struct {
	Name       string            `yaml:"name"` // output file stem
	Type       string            `yaml:"type"`
	IP         string            `yaml:"ip"`
	Workload   string            `yaml:"workload"`
	Namespace  string            `yaml:"namespace"`
	Labels     map[string]string `yaml:"labels"`
	Ports      string            `yaml:"ports"` // node.ParsePorts syntax
	Capture    bool              `yaml:"capture"`
	AppAddress string            `yaml:"appAddress"`
	ProxyPort  uint32            `yaml:"proxyPort"`
	Generator  string            `yaml:"generator"`
	Locality   string            `yaml:"locality"`
	// MeshTLS: the proxy holds a workload certificate (auto mTLS and
	// PeerAuthentication apply).
	MeshTLS bool `yaml:"meshTLS"`
	// NoGolden: the proxy only serves (registers endpoints); its output
	// is checked but not kept as a golden file.
	NoGolden bool `yaml:"noGolden"`
	// NoRegister keeps the proxy's workload out of the registry (a client
	// that serves nothing, like a gRPC client).
	NoRegister bool `yaml:"noRegister"`
}

func (g goldenProxy) meta(t *testing.T) *node.Meta {
	t.Helper()
	ports, err := node.ParsePorts(g.Ports)
	if err != nil {
		t.Fatalf("proxy %s: %v", g.Name, err)
	}
	m := &node.Meta{
		Type: node.Type(g.Type), IP: g.IP, Name: g.Workload, Namespace: g.Namespace,
		ServiceAccount: "default", Labels: g.Labels, Ports: ports, Capture: g.Capture,
		AppAddress: g.AppAddress, ProxyPort: g.ProxyPort, Generator: g.Generator, MeshTLS: g.MeshTLS, Locality: g.Locality,
	}
	if m.Type == "" {
		m.Type = node.Sidecar
	}
	if m.Name == "" {
		m.Name = g.Name
	}
	if m.Namespace == "" {
		m.Namespace = "default"
	}
	if m.AppAddress == "" {
		m.AppAddress = "127.0.0.1"
	}
	return m
}

// loadCase builds the snapshot and proxies of one golden case the way the
// control plane does: config loader, registry with auto-registered proxies.
func loadCase(t *testing.T, dir string) (*model.Snapshot, []goldenProxy, []*model.Proxy) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "proxies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var gc goldenCase
	if err := yaml.Unmarshal(raw, &gc); err != nil {
		t.Fatalf("%s/proxies.yaml: %v", dir, err)
	}
	paths := []string{filepath.Join(dir, "config.yaml")}
	for _, inc := range gc.Include {
		paths = append(paths, filepath.Join("testdata", inc))
	}
	res, err := config.LoadPaths(paths, config.Options{})
	if err != nil {
		t.Fatalf("loading %v: %v", paths, err)
	}
	var metas []*node.Meta
	var workloads []*registry.Workload
	for _, gp := range gc.Proxies {
		m := gp.meta(t)
		metas = append(metas, m)
		if !gp.NoRegister {
			workloads = append(workloads, registry.FromMeta(m))
		}
	}
	snap, err := registry.Build(res, workloads)
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	snap.Features.TLSOnSidecarIngress = gc.Features.TLSOnSidecarIngress
	var proxies []*model.Proxy
	for _, m := range metas {
		// Golden proxies connected over mutual TLS: their verified
		// identity is the one their metadata names.
		id := &meshtls.Identity{TrustDomain: "cluster.local", Namespace: m.Namespace, ServiceAccount: m.ServiceAccount}
		proxies = append(proxies, &model.Proxy{Meta: m, ID: m.ID(), Identity: id, Services: registry.ServicesFor(snap, m)})
	}
	return snap, gc.Proxies, proxies
}

// render is the golden form: protojson per resource, re-indented with
// sorted keys so the bytes are stable.
func render(t *testing.T, o *Output) []byte {
	t.Helper()
	group := func(ms []proto.Message) []json.RawMessage {
		out := []json.RawMessage{}
		for _, m := range ms {
			b, err := protojson.Marshal(m)
			if err != nil {
				t.Fatalf("protojson: %v", err)
			}
			out = append(out, b)
		}
		return out
	}
	doc := map[string]any{
		"listeners": group(msgs(o.Listeners)),
		"routes":    group(msgs(o.Routes)),
		"clusters":  group(msgs(o.Clusters)),
		"endpoints": group(msgs(o.Endpoints)),
		"secrets":   group(msgs(o.Secrets)),
	}
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatal(err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(out, '\n')
}

func msgs[T proto.Message](in []T) []proto.Message {
	out := make([]proto.Message, len(in))
	for i, m := range in {
		out[i] = m
	}
	return out
}

func cases(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob("testdata/*/proxies.yaml")
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no golden cases: %v", err)
	}
	for i, d := range dirs {
		dirs[i] = filepath.Dir(d)
	}
	return dirs
}

func TestGolden(t *testing.T) {
	for _, dir := range cases(t) {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			snap, gps, proxies := loadCase(t, dir)
			for i, p := range proxies {
				out := Build(snap, p)
				if err := out.Check(); err != nil {
					t.Errorf("proxy %s: Check: %v", gps[i].Name, err)
				}
				if gps[i].NoGolden {
					continue
				}
				got := render(t, out)
				file := filepath.Join(dir, gps[i].Name+".json")
				if *update {
					if err := os.WriteFile(file, got, 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(file)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("proxy %s: output differs from %s (run with -update and review the diff)\n%s", gps[i].Name, file, firstDiff(want, got))
				}
			}
		})
	}
}

// TestDeterministic builds every case twice and compares the bytes.
func TestDeterministic(t *testing.T) {
	for _, dir := range cases(t) {
		snap, gps, proxies := loadCase(t, dir)
		for i, p := range proxies {
			a, b := render(t, Build(snap, p)), render(t, Build(snap, p))
			if !bytes.Equal(a, b) {
				t.Errorf("%s proxy %s: two builds differ\n%s", dir, gps[i].Name, firstDiff(a, b))
			}
		}
	}
}

func firstDiff(want, got []byte) string {
	w, g := strings.Split(string(want), "\n"), strings.Split(string(got), "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, b string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			b = g[i]
		}
		if a != b {
			return "line " + itoa(uint32(i+1)) + ":\n- " + a + "\n+ " + b
		}
	}
	return "(no line differs)"
}

// TestEveryModeChecks translates every case's config for each proxy in
// every role (capture and explicit sidecar, router, proxyless gRPC): the
// output must always pass Check, whatever the config was written for.
func TestEveryModeChecks(t *testing.T) {
	modes := []struct {
		name string
		set  func(m *node.Meta)
	}{
		{"capture", func(m *node.Meta) { m.Type, m.Capture, m.Generator = node.Sidecar, true, "" }},
		{"explicit", func(m *node.Meta) { m.Type, m.Capture, m.Generator, m.ProxyPort = node.Sidecar, false, "", 15080 }},
		{"explicit-no-proxy-port", func(m *node.Meta) { m.Type, m.Capture, m.Generator, m.ProxyPort = node.Sidecar, false, "", 0 }},
		{"router", func(m *node.Meta) { m.Type, m.Generator = node.Router, "" }},
		{"grpc", func(m *node.Meta) { m.Type, m.Generator = node.Sidecar, "grpc" }},
	}
	for _, dir := range cases(t) {
		snap, gps, proxies := loadCase(t, dir)
		for i, p := range proxies {
			for _, mode := range modes {
				m := *p.Meta
				mode.set(&m)
				q := &model.Proxy{Meta: &m, ID: m.ID(), Services: p.Services}
				if err := Build(snap, q).Check(); err != nil {
					t.Errorf("%s proxy %s as %s: %v", dir, gps[i].Name, mode.name, err)
				}
			}
		}
	}
}

// TestSecretsStayInNamespace checks the CVE-2021-34824 invariant over every
// case and role: each secret in an output is the proxy's own namespace's
// copy of that credential, byte for byte.
func TestSecretsStayInNamespace(t *testing.T) {
	served := 0
	for _, dir := range cases(t) {
		snap, gps, proxies := loadCase(t, dir)
		for i, p := range proxies {
			for _, typ := range []node.Type{p.Meta.Type, node.Router} {
				m := *p.Meta
				m.Type = typ
				out := Build(snap, &model.Proxy{Meta: &m, ID: m.ID(), Identity: p.Identity, Services: p.Services})
				for _, s := range out.Secrets {
					cred := strings.TrimSuffix(strings.TrimPrefix(s.Name, credentialPrefix), "-cacert")
					own := snap.Secrets[m.Namespace+"/"+cred]
					if own == nil {
						t.Errorf("%s proxy %s (ns %s): secret %s has no copy in the proxy's namespace", dir, gps[i].Name, m.Namespace, s.Name)
						continue
					}
					got := s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
					want := own.CertChain
					if strings.HasSuffix(s.Name, "-cacert") {
						if len(own.CACert) == 0 { // the separate NAME-cacert secret
							own = snap.Secrets[m.Namespace+"/"+cred+"-cacert"]
						}
						got, want = s.GetValidationContext().GetTrustedCa().GetInlineBytes(), own.GetCACert()
					}
					if !bytes.Equal(got, want) {
						t.Errorf("%s proxy %s: secret %s is not namespace %s's", dir, gps[i].Name, s.Name, m.Namespace)
					}
					served++
				}
			}
		}
	}
	if served == 0 {
		t.Fatal("no case serves a secret; the invariant was not exercised")
	}
}
