package demo

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	iptcapture "github.com/weftmesh/weft/internal/proxy/capture"
)

// Capture mode (root, Linux): each workload runs in a network namespace of
// its own, joined to a bridge, with Istio's iptables rules: outbound TCP is
// redirected to the sidecar's 15001, inbound to 15006, and the proxy (uid
// 1337) is exempt. Apps call http://reviews:9080 with no proxy settings;
// names resolve through /etc/netns/NS/hosts to service VIPs (198.19.K.0/24).
// Workload IPs are 198.18.K.0/24, K = Options.CaptureNet.

const proxyUID = "1337"

type capture struct {
	id     string // short mesh id used in interface and namespace names
	k      int    // third octet of this mesh's ranges
	bridge string
	hosts  []byte // /etc/hosts content for every namespace
	nss    []string
}

func (c *capture) gateway() string { return fmt.Sprintf("198.18.%d.1", c.k) }

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// CaptureUnavailable says why capture mode cannot run here (nil when it
// can): it needs root, iproute2's ip, iptables with a working nat table,
// and util-linux's setpriv. Tests skip with this reason.
func CaptureUnavailable() error {
	if os.Geteuid() != 0 {
		return errors.New("capture mode needs root (network namespaces and iptables)")
	}
	for _, tool := range []struct{ bin, pkg string }{{"ip", "iproute2"}, {"iptables", "iptables"}, {"setpriv", "util-linux"}} {
		if _, err := exec.LookPath(tool.bin); err != nil {
			return fmt.Errorf("capture mode needs %s (Debian package %s; make deps installs it)", tool.bin, tool.pkg)
		}
	}
	if err := run("iptables", "-t", "nat", "-S", "OUTPUT"); err != nil {
		return fmt.Errorf("capture mode needs iptables' nat table: %w", err)
	}
	return nil
}

func newCapture(id string, k int) (*capture, error) {
	if err := CaptureUnavailable(); err != nil {
		return nil, err
	}
	c := &capture{id: id, k: k, bridge: "weft-" + id}
	_ = run("ip", "link", "del", c.bridge) // left over from a killed run
	if err := run("ip", "link", "add", c.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	if err := run("ip", "addr", "add", c.gateway()+"/24", "dev", c.bridge); err != nil {
		return nil, err
	}
	if err := run("ip", "link", "set", c.bridge, "up"); err != nil {
		return nil, err
	}
	return c, nil
}

// assignVIPs gives every Kubernetes Service in dir a clusterIP (when it has
// none) and builds the hosts file mapping service names to them.
func (c *capture) assignVIPs(dir string) error {
	type entry struct{ ip, names string }
	var hosts []entry
	n := 10
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".yaml") || strings.HasSuffix(p, ".yml")) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		var docs []*yaml.Node
		changed := false
		for {
			var doc yaml.Node
			if err := dec.Decode(&doc); err == io.EOF {
				break
			} else if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			docs = append(docs, &doc)
			if len(doc.Content) == 0 || field(doc.Content[0], "kind") == nil || field(doc.Content[0], "kind").Value != "Service" {
				continue
			}
			root := doc.Content[0]
			meta, spec := field(root, "metadata"), field(root, "spec")
			if meta == nil || spec == nil || field(meta, "name") == nil {
				continue
			}
			name, ns := field(meta, "name").Value, "default"
			if v := field(meta, "namespace"); v != nil {
				ns = v.Value
			}
			ip := ""
			if v := field(spec, "clusterIP"); v != nil {
				ip = v.Value
			} else {
				ip = fmt.Sprintf("198.19.%d.%d", c.k, n)
				n++
				spec.Content = append(spec.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "clusterIP"}, &yaml.Node{Kind: yaml.ScalarNode, Value: ip})
				changed = true
			}
			names := []string{name + "." + ns + ".svc.cluster.local", name + "." + ns + ".svc", name + "." + ns}
			if ns == "default" {
				names = append(names, name)
			}
			hosts = append(hosts, entry{ip, strings.Join(names, " ")})
		}
		if !changed {
			return nil
		}
		var out bytes.Buffer
		enc := yaml.NewEncoder(&out)
		enc.SetIndent(2)
		for _, d := range docs {
			if err := enc.Encode(d); err != nil {
				return err
			}
		}
		enc.Close()
		return os.WriteFile(p, out.Bytes(), 0o644)
	})
	if err != nil {
		return err
	}
	sort.Slice(hosts, func(i, j int) bool { return hosts[i].ip < hosts[j].ip })
	var b bytes.Buffer
	b.WriteString("127.0.0.1 localhost\n")
	for _, h := range hosts {
		fmt.Fprintf(&b, "%s %s\n", h.ip, h.names)
	}
	c.hosts = b.Bytes()
	return nil
}

func field(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// addNamespace creates namespace n with IP 198.18.K.(n+1) and Istio's rules.
func (c *capture) addNamespace(n int) (ns, ip string, err error) {
	ns = fmt.Sprintf("weft-%s-%d", c.id, n)
	ip = fmt.Sprintf("198.18.%d.%d", c.k, n+1)
	veth := fmt.Sprintf("wv-%s-%d", c.id, n)
	// Left over from a run that was killed: the namespace and the host end
	// of the veth (namespace teardown is asynchronous).
	_ = run("ip", "netns", "del", ns)
	_ = run("ip", "link", "del", veth)
	steps := [][]string{
		{"ip", "netns", "add", ns},
		{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "link", "set", veth, "master", c.bridge, "up"},
		{"ip", "-n", ns, "addr", "add", ip + "/24", "dev", "eth0"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "-n", ns, "link", "set", "lo", "up"},
		{"ip", "-n", ns, "route", "add", "default", "via", c.gateway()},
	}
	// Istio's capture (the rules istio-init installs in a pod): inbound
	// TCP → 15006 except the proxy's own ports; outbound TCP → 15001
	// except the proxy's traffic (uid 1337) and loopback.
	opts := iptcapture.Defaults()
	opts.ExcludeInboundPorts = "15000,15006,15008,15020,15021,15080,15090"
	for _, r := range iptcapture.Rules(opts) {
		steps = append(steps, append([]string{"ip", "netns", "exec", ns, "iptables", "-t", "nat"}, r...))
	}
	c.nss = append(c.nss, ns)
	for _, s := range steps {
		if err := run(s...); err != nil {
			return "", "", err
		}
	}
	dir := filepath.Join("/etc/netns", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts"), c.hosts, 0o644); err != nil {
		return "", "", err
	}
	return ns, ip, nil
}

// wrap runs a command inside ns, optionally as the proxy user.
func wrap(ns string, asProxy bool, bin string, args ...string) (string, []string) {
	out := []string{"netns", "exec", ns}
	if asProxy {
		out = append(out, "setpriv", "--reuid="+proxyUID, "--regid="+proxyUID, "--clear-groups")
	}
	return "ip", append(append(out, bin), args...)
}

func (c *capture) close() {
	for _, ns := range c.nss {
		_ = run("ip", "netns", "del", ns)
		_ = os.RemoveAll(filepath.Join("/etc/netns", ns))
	}
	_ = run("ip", "link", "del", c.bridge)
}
