// Package capture computes and installs Istio's iptables capture rules in
// a network namespace: inbound TCP to the proxy's virtualInbound port
// (15006), outbound TCP to virtualOutbound (15001), the proxy's own
// traffic (its UID/GID, 1337) and loopback exempt. It runs as the pod's
// istio-init container (`weft-proxy iptables`) and in the demo's capture
// mode. The traffic.sidecar.istio.io annotations map onto Options.
package capture

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os/exec"
	"strconv"
	"strings"
)

// Chains Weft adds to the nat table (Istio's are ISTIO_*).
const (
	ChainInbound    = "WEFT_INBOUND"
	ChainInRedirect = "WEFT_IN_REDIRECT"
	ChainOutput     = "WEFT_OUTPUT"
	ChainRedirect   = "WEFT_REDIRECT"
)

// Options are the capture settings; lists are comma-separated, "*" means
// all (Istio's istio-iptables flags and annotation values).
type Options struct {
	ProxyUID, ProxyGID        int
	OutboundPort, InboundPort int
	// IncludeOutboundIPRanges: "*" (all), "" (no outbound capture) or CIDRs.
	IncludeOutboundIPRanges string
	ExcludeOutboundIPRanges string
	// IncludeInboundPorts: "*" (all), "" (no inbound capture) or ports.
	IncludeInboundPorts  string
	ExcludeInboundPorts  string
	ExcludeOutboundPorts string
}

// Defaults are Istio's: capture everything but the proxy's own traffic.
func Defaults() Options {
	return Options{ProxyUID: 1337, ProxyGID: 1337, OutboundPort: 15001, InboundPort: 15006,
		IncludeOutboundIPRanges: "*", IncludeInboundPorts: "*", ExcludeInboundPorts: "15090,15021,15020"}
}

func list(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Validate names the first bad field.
func (o Options) Validate() error {
	for _, p := range []struct {
		name string
		v    int
	}{{"outbound-port", o.OutboundPort}, {"inbound-port", o.InboundPort}} {
		if p.v < 1 || p.v > 65535 {
			return fmt.Errorf("--%s: %d is not a port", p.name, p.v)
		}
	}
	if o.ProxyUID < 0 || o.ProxyGID < 0 {
		return errors.New("--proxy-uid/--proxy-gid must not be negative")
	}
	for _, f := range []struct{ name, v string }{{"include-inbound-ports", o.IncludeInboundPorts}, {"exclude-inbound-ports", o.ExcludeInboundPorts}, {"exclude-outbound-ports", o.ExcludeOutboundPorts}} {
		if f.v == "*" && f.name == "include-inbound-ports" {
			continue
		}
		for _, p := range list(f.v) {
			if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
				return fmt.Errorf("--%s: %q is not a port", f.name, p)
			}
		}
	}
	for _, f := range []struct{ name, v string }{{"include-outbound-ip-ranges", o.IncludeOutboundIPRanges}, {"exclude-outbound-ip-ranges", o.ExcludeOutboundIPRanges}} {
		if f.v == "*" && f.name == "include-outbound-ip-ranges" {
			continue
		}
		for _, c := range list(f.v) {
			if _, err := netip.ParsePrefix(c); err != nil {
				return fmt.Errorf("--%s: %q is not a CIDR", f.name, c)
			}
		}
	}
	return nil
}

// Rules are the nat-table iptables argument lists, in order (each runs as
// `iptables -t nat ARGS`). IPv6 ranges are skipped: these are IPv4 rules.
func Rules(o Options) [][]string {
	var r [][]string
	add := func(a ...string) { r = append(r, a) }
	inPort, outPort := strconv.Itoa(o.InboundPort), strconv.Itoa(o.OutboundPort)
	add("-N", ChainInRedirect)
	add("-A", ChainInRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", inPort)
	add("-N", ChainRedirect)
	add("-A", ChainRedirect, "-p", "tcp", "-j", "REDIRECT", "--to-ports", outPort)

	// Inbound.
	if o.IncludeInboundPorts != "" {
		add("-N", ChainInbound)
		add("-A", "PREROUTING", "-p", "tcp", "-j", ChainInbound)
		if o.IncludeInboundPorts == "*" {
			// The proxy's own inbound port is never redirected to itself.
			for _, p := range append([]string{inPort}, list(o.ExcludeInboundPorts)...) {
				add("-A", ChainInbound, "-p", "tcp", "--dport", p, "-j", "RETURN")
			}
			add("-A", ChainInbound, "-p", "tcp", "-j", ChainInRedirect)
		} else {
			for _, p := range list(o.IncludeInboundPorts) {
				add("-A", ChainInbound, "-p", "tcp", "--dport", p, "-j", ChainInRedirect)
			}
		}
	}

	// Outbound.
	add("-N", ChainOutput)
	add("-A", "OUTPUT", "-p", "tcp", "-j", ChainOutput)
	for _, p := range list(o.ExcludeOutboundPorts) {
		add("-A", ChainOutput, "-p", "tcp", "--dport", p, "-j", "RETURN")
	}
	uid, gid := strconv.Itoa(o.ProxyUID), strconv.Itoa(o.ProxyGID)
	add("-A", ChainOutput, "-m", "owner", "--uid-owner", uid, "-j", "RETURN")
	add("-A", ChainOutput, "-m", "owner", "--gid-owner", gid, "-j", "RETURN")
	add("-A", ChainOutput, "-d", "127.0.0.0/8", "-j", "RETURN")
	for _, c := range list(o.ExcludeOutboundIPRanges) {
		if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
			add("-A", ChainOutput, "-d", p.String(), "-j", "RETURN")
		}
	}
	switch o.IncludeOutboundIPRanges {
	case "":
	case "*":
		add("-A", ChainOutput, "-j", ChainRedirect)
	default:
		for _, c := range list(o.IncludeOutboundIPRanges) {
			if p, err := netip.ParsePrefix(c); err == nil && p.Addr().Is4() {
				add("-A", ChainOutput, "-d", p.String(), "-j", ChainRedirect)
			}
		}
	}
	return r
}

// Install runs the rules with runner (prefix, e.g. ["iptables", "-t",
// "nat"] or ["ip", "netns", "exec", NS, "iptables", "-t", "nat"]).
func Install(o Options, prefix ...string) error {
	if err := o.Validate(); err != nil {
		return err
	}
	for _, rule := range Rules(o) {
		args := append(append([]string{}, prefix...), rule...)
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}

// Main is `weft-proxy iptables [flags]`: it installs the rules in the
// current network namespace (the pod's, as istio-init), or with --dry-run
// prints them.
func Main(args []string, stdout, stderr io.Writer) int {
	o := Defaults()
	fs := flag.NewFlagSet("weft-proxy iptables", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&o.ProxyUID, "proxy-uid", o.ProxyUID, "the proxy's UID: its traffic is not captured")
	fs.IntVar(&o.ProxyGID, "proxy-gid", o.ProxyGID, "the proxy's GID: its traffic is not captured")
	fs.IntVar(&o.OutboundPort, "outbound-port", o.OutboundPort, "virtualOutbound port")
	fs.IntVar(&o.InboundPort, "inbound-port", o.InboundPort, "virtualInbound port")
	fs.StringVar(&o.IncludeOutboundIPRanges, "include-outbound-ip-ranges", o.IncludeOutboundIPRanges, `CIDRs whose outbound TCP is captured ("*": all, "": none)`)
	fs.StringVar(&o.ExcludeOutboundIPRanges, "exclude-outbound-ip-ranges", o.ExcludeOutboundIPRanges, "CIDRs never captured")
	fs.StringVar(&o.IncludeInboundPorts, "include-inbound-ports", o.IncludeInboundPorts, `inbound ports captured ("*": all, "": none)`)
	fs.StringVar(&o.ExcludeInboundPorts, "exclude-inbound-ports", o.ExcludeInboundPorts, "inbound ports never captured")
	fs.StringVar(&o.ExcludeOutboundPorts, "exclude-outbound-ports", o.ExcludeOutboundPorts, "outbound ports never captured")
	dry := fs.Bool("dry-run", false, "print the iptables commands instead of running them")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(stderr, "weft-proxy iptables:", err)
		return 2
	}
	if *dry {
		for _, r := range Rules(o) {
			fmt.Fprintln(stdout, "iptables -t nat "+strings.Join(r, " "))
		}
		return 0
	}
	if err := Install(o, "iptables", "-t", "nat"); err != nil {
		fmt.Fprintln(stderr, "weft-proxy iptables:", err)
		return 1
	}
	return 0
}
