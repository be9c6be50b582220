// Package httpsproxy stands in for a company's HTTPS proxy outside the mesh
// (squid in Istio's "Egress via an external HTTPS proxy" task): apps send
// CONNECT host:port and the proxy opens a TCP tunnel to the site, so TLS
// runs end to end between app and site. It logs one line per tunnel, like
// squid's access log, which is how the task shows the proxy was used.
package httpsproxy

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Proxy is the CONNECT proxy's handler.
type Proxy struct {
	// Ports are the destination ports CONNECT may open (squid's
	// SSL_ports); empty means only 443.
	Ports []int
	// Override resolves names to fixed IPs first (no internet here).
	Override map[string]string
	// Dial opens the upstream connection; nil means a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	Log  *slog.Logger
}

var _ http.Handler = (*Proxy)(nil)

// ServeHTTP answers CONNECT with a tunnel and anything else with 405.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodConnect {
		w.Header().Set("Allow", http.MethodConnect)
		http.Error(w, "this proxy only tunnels CONNECT", http.StatusMethodNotAllowed)
		return
	}
	host, port, err := net.SplitHostPort(r.Host)
	n, perr := strconv.Atoi(port)
	if err != nil || perr != nil || host == "" {
		p.access(r, http.StatusBadRequest, 0, 0)
		http.Error(w, "CONNECT needs host:port", http.StatusBadRequest)
		return
	}
	if !p.allowed(n) {
		p.access(r, http.StatusForbidden, 0, 0)
		http.Error(w, "CONNECT to port "+port+" is not allowed", http.StatusForbidden)
		return
	}
	addr := r.Host
	if ip, ok := p.Override[strings.ToLower(host)]; ok {
		addr = net.JoinHostPort(ip, port)
	}
	dial := p.Dial
	if dial == nil {
		dial = (&net.Dialer{Timeout: 10 * time.Second}).DialContext
	}
	up, err := dial(r.Context(), "tcp", addr)
	if err != nil {
		p.access(r, http.StatusServiceUnavailable, 0, 0)
		http.Error(w, "connecting to "+r.Host+": "+err.Error(), http.StatusServiceUnavailable)
		return
	}
	defer up.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		p.access(r, http.StatusInternalServerError, 0, 0)
		http.Error(w, "cannot tunnel on this connection", http.StatusInternalServerError)
		return
	}
	down, brw, err := hj.Hijack()
	if err != nil {
		return
	}
	defer down.Close()
	if _, err := io.WriteString(down, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
		return
	}
	var sent, received int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		// Bytes the client sent after its CONNECT head may sit buffered.
		sent, _ = io.Copy(up, brw.Reader)
		closeWrite(up)
	}()
	received, _ = io.Copy(down, up)
	closeWrite(down)
	wg.Wait()
	p.access(r, http.StatusOK, sent, received)
}

func (p *Proxy) allowed(port int) bool {
	if len(p.Ports) == 0 {
		return port == 443
	}
	for _, n := range p.Ports {
		if n == port {
			return true
		}
	}
	return false
}

// access logs a tunnel as squid would: method, authority, status, bytes.
func (p *Proxy) access(r *http.Request, status int, sent, received int64) {
	if p.Log == nil {
		return
	}
	p.Log.Info("access", "client", r.RemoteAddr, "method", r.Method, "authority", r.Host,
		"status", status, "bytes_sent", sent, "bytes_received", received)
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
