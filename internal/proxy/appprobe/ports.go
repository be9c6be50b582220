package appprobe

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"
)

// PortsPath prefixes the app container's postStart hook the injector adds:
// GET :15020/app-ports/<port>,<port> answers once every port accepts a
// connection. The kubelet does not mark a container Running, so the pod is
// not Ready, before its postStart hook returns: a pod whose app has no
// readiness probe gets no traffic before the app listens (without it the
// endpoint reached clients up to a second before, and each request of that
// moment got 503 from the pod's own sidecar).
const PortsPath = "/app-ports/"

// PortsHandler answers PortsPath requests: it waits until each port has a
// listening TCP socket in the pod's network namespace and answers 200 when
// all do, or when bound has passed (a hook that fails would kill the
// container, and an app may declare a port it never listens on), saying
// which port did not. It reads the namespace's socket table rather than
// connecting: under capture, the sidecar's own connection to the pod IP is
// redirected to its inbound listener and would always succeed, and an app
// may listen on the pod IP only.
func PortsHandler(bound time.Duration, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ports, err := parsePorts(strings.TrimPrefix(r.URL.Path, PortsPath))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.Context(), bound)
		defer cancel()
		missing, socks := waitListening(ctx, ports)
		waited := time.Since(start).Round(time.Millisecond)
		if missing != 0 {
			log.Warn("app port not listening; letting the container start anyway", "port", missing, "waited", waited)
			fmt.Fprintf(w, "port %d not listening after %v\n", missing, bound)
			return
		}
		// Which sockets answered, and whose (uid): the hook is what holds
		// the pod's readiness, so its answers are logged.
		log.Info("app ports listening", "ports", ports, "waited", waited, "sockets", socks)
		fmt.Fprintf(w, "listening after %v\n", waited)
	})
}

func parsePorts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		p, err := strconv.Atoi(f)
		if err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("app ports: %q is not a port", f)
		}
		out = append(out, p)
	}
	if len(out) > 64 {
		return nil, fmt.Errorf("app ports: %d ports, at most 64", len(out))
	}
	return out, nil
}

// waitListening returns 0 and the ports' listening sockets once every
// port listens, else the first port still not listening when ctx ends.
func waitListening(ctx context.Context, ports []int) (int, []string) {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		l := listeningPorts()
		missing := 0
		var socks []string
		for _, p := range ports {
			if len(l[p]) == 0 {
				missing = p
				break
			}
			socks = append(socks, l[p]...)
		}
		if missing == 0 {
			return 0, socks
		}
		select {
		case <-ctx.Done():
			return missing, nil
		case <-tick.C:
		}
	}
}

// listeningPorts maps each local port with a TCP socket in LISTEN state
// in this network namespace (/proc/net/tcp and tcp6) to those sockets
// ("address:port uid N").
func listeningPorts() map[int][]string {
	out := map[int][]string{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		parseListening(string(b), out)
	}
	return out
}

// parseListening adds the LISTEN (state 0A) sockets of one /proc/net/tcp
// table to out, by local port.
func parseListening(table string, out map[int][]string) {
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 || f[3] != "0A" {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			continue
		}
		p, err := strconv.ParseUint(f[1][i+1:], 16, 16)
		if err != nil {
			continue
		}
		out[int(p)] = append(out[int(p)], net.JoinHostPort(hexAddr(f[1][:i]), strconv.Itoa(int(p)))+" uid "+f[7])
	}
}

// hexAddr reads a /proc/net/tcp address: the IPv4 or IPv6 bytes as
// 32-bit words in host (little-endian) order.
func hexAddr(h string) string {
	b, err := hex.DecodeString(h)
	if err != nil || (len(b) != 4 && len(b) != 16) {
		return h
	}
	for i := 0; i+4 <= len(b); i += 4 {
		b[i], b[i+1], b[i+2], b[i+3] = b[i+3], b[i+2], b[i+1], b[i]
	}
	if len(b) == 4 {
		return netip.AddrFrom4([4]byte(b)).String()
	}
	return netip.AddrFrom16([16]byte(b)).String()
}
