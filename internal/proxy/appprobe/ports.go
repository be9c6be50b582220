package appprobe

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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

// PortsHandler answers PortsPath requests: it polls each port on hosts
// (any host accepting counts) and answers 200 when all listen, or when
// bound has passed (a hook that fails would kill the container, and an app
// may declare a port it never listens on), saying which port did not.
func PortsHandler(hosts []string, bound time.Duration, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ports, err := parsePorts(strings.TrimPrefix(r.URL.Path, PortsPath))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		start := time.Now()
		ctx, cancel := context.WithTimeout(r.Context(), bound)
		defer cancel()
		missing := waitListening(ctx, hosts, ports)
		if missing != 0 {
			log.Warn("app port not listening; letting the container start anyway", "port", missing, "waited", time.Since(start).Round(time.Millisecond))
			fmt.Fprintf(w, "port %d not listening after %v\n", missing, bound)
			return
		}
		fmt.Fprintf(w, "listening after %v\n", time.Since(start).Round(time.Millisecond))
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

// waitListening returns 0 once every port accepts on one of hosts, else
// the first port still refusing when ctx ends.
func waitListening(ctx context.Context, hosts []string, ports []int) int {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, p := range ports {
		for !accepts(ctx, hosts, p) {
			select {
			case <-ctx.Done():
				return p
			case <-tick.C:
			}
		}
	}
	return 0
}

func accepts(ctx context.Context, hosts []string, port int) bool {
	for _, h := range hosts {
		dctx, cancel := context.WithTimeout(ctx, 250*time.Millisecond)
		var d net.Dialer
		c, err := d.DialContext(dctx, "tcp", net.JoinHostPort(h, strconv.Itoa(port)))
		cancel()
		if err == nil {
			c.Close()
			return true
		}
	}
	return false
}
