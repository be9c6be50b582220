package capture

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestRules(t *testing.T) {
	o := Defaults()
	o.ExcludeOutboundPorts = "3306"
	o.ExcludeOutboundIPRanges = "10.1.0.0/16,fd00::/8"
	got := map[string]bool{}
	for _, r := range Rules(o) {
		got[strings.Join(r, " ")] = true
	}
	for _, want := range []string{
		"-A WEFT_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006",
		"-A WEFT_REDIRECT -p tcp -j REDIRECT --to-ports 15001",
		"-A PREROUTING -p tcp -j WEFT_INBOUND",
		"-A WEFT_INBOUND -p tcp --dport 15021 -j RETURN",
		"-A WEFT_INBOUND -p tcp --dport 15006 -j RETURN",
		"-A WEFT_INBOUND -p tcp -j WEFT_IN_REDIRECT",
		"-A OUTPUT -p tcp -j WEFT_OUTPUT",
		"-A WEFT_OUTPUT -p tcp --dport 3306 -j RETURN",
		"-A WEFT_OUTPUT -m owner --uid-owner 1337 -j RETURN",
		"-A WEFT_OUTPUT -d 10.1.0.0/16 -j RETURN",
		"-A WEFT_OUTPUT -j WEFT_REDIRECT",
	} {
		if !got[want] {
			t.Errorf("missing rule %q", want)
		}
	}
	for r := range got {
		if strings.Contains(r, "fd00") {
			t.Errorf("IPv6 range in IPv4 rules: %q", r)
		}
	}

	o = Defaults()
	o.IncludeInboundPorts = "9080"
	o.IncludeOutboundIPRanges = "10.0.0.0/8"
	rules := fmt.Sprint(Rules(o))
	if !strings.Contains(rules, "--dport 9080 -j WEFT_IN_REDIRECT") || !strings.Contains(rules, "-d 10.0.0.0/8 -j WEFT_REDIRECT") || strings.Contains(rules, "[-A WEFT_OUTPUT -j WEFT_REDIRECT]") {
		t.Errorf("include lists: %s", rules)
	}
	o.IncludeInboundPorts, o.IncludeOutboundIPRanges = "", ""
	if rules := fmt.Sprint(Rules(o)); strings.Contains(rules, "PREROUTING") || strings.Contains(rules, "-j WEFT_REDIRECT") {
		t.Errorf("empty includes still capture: %s", rules)
	}
}

func TestMainFlags(t *testing.T) {
	var out, errb bytes.Buffer
	if code := Main([]string{"--dry-run", "--exclude-outbound-ports=5432"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "iptables -t nat -A WEFT_OUTPUT -p tcp --dport 5432 -j RETURN") {
		t.Fatalf("code %d, out %s, err %s", code, out.String(), errb.String())
	}
	for _, bad := range [][]string{{"--exclude-outbound-ports=x"}, {"--include-outbound-ip-ranges=10.0.0.0"}, {"--inbound-port=0"}} {
		errb.Reset()
		if code := Main(append(bad, "--dry-run"), &out, &errb); code != 2 || !strings.Contains(errb.String(), strings.SplitN(strings.TrimPrefix(bad[0], "--"), "=", 2)[0]) {
			t.Errorf("%v: code %d, stderr %q (want 2 naming the flag)", bad, code, errb.String())
		}
	}
}

// TestInstallInNetns installs the rules in a fresh network namespace (as
// istio-init does in a pod) and reads them back from the kernel.
func TestInstallInNetns(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	for _, b := range []string{"ip", "iptables"} {
		if _, err := exec.LookPath(b); err != nil {
			t.Skipf("needs %s", b)
		}
	}
	ns := fmt.Sprintf("weft-capture-test-%d", os.Getpid())
	if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("no network namespaces here: %v: %s", err, out)
	}
	defer exec.Command("ip", "netns", "del", ns).Run()
	o := Defaults()
	o.ExcludeOutboundPorts = "5432"
	if err := Install(o, "ip", "netns", "exec", ns, "iptables", "-t", "nat"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("ip", "netns", "exec", ns, "iptables", "-t", "nat", "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	for _, want := range []string{"-A OUTPUT -p tcp -j WEFT_OUTPUT", "--uid-owner 1337 -j RETURN", "--dport 5432 -j RETURN", "-j REDIRECT --to-ports 15001", "-j REDIRECT --to-ports 15006"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("kernel rules lack %q:\n%s", want, out)
		}
	}
	// A second run fails loudly (chains exist) rather than doubling rules.
	if err := Install(o, "ip", "netns", "exec", ns, "iptables", "-t", "nat"); err == nil {
		t.Error("second install succeeded")
	}
}
