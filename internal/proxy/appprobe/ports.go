package appprobe

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
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
		missing := waitListening(ctx, ports)
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

// waitListening returns 0 once every port listens, else the first port
// still not listening when ctx ends.
func waitListening(ctx context.Context, ports []int) int {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		l := listeningPorts()
		missing := 0
		for _, p := range ports {
			if !l[p] {
				missing = p
				break
			}
		}
		if missing == 0 {
			return 0
		}
		select {
		case <-ctx.Done():
			return missing
		case <-tick.C:
		}
	}
}

// listeningPorts is the set of local ports with a TCP socket in LISTEN
// state in this network namespace (/proc/net/tcp and tcp6).
func listeningPorts() map[int]bool {
	out := map[int]bool{}
	for _, f := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		parseListening(string(b), out)
	}
	return out
}

// parseListening adds the LISTEN (state 0A) sockets' local ports of one
// /proc/net/tcp table to out.
func parseListening(table string, out map[int]bool) {
	for _, line := range strings.Split(table, "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 4 || f[3] != "0A" {
			continue
		}
		i := strings.LastIndexByte(f[1], ':')
		if i < 0 {
			continue
		}
		if p, err := strconv.ParseUint(f[1][i+1:], 16, 16); err == nil {
			out[int(p)] = true
		}
	}
}
