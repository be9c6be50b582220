package cluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/weftmesh/weft/internal/proxy/downstream"
	"github.com/weftmesh/weft/internal/proxy/rflag"
)

var noOptions RequestOptions

// maxHostSelection bounds re-picks that avoid RequestOptions.Exclude
// (Envoy's host_selection_retry_max_attempts).
const maxHostSelection = 5

// pickHost chooses the upstream host for one attempt.
func (c *Cluster) pickHost(ctx context.Context, o *RequestOptions) (*host, error) {
	sh := c.sh
	if sh.cfg.disc == discOriginalDst {
		return sh.originalDstHost(o.OriginalDst)
	}
	if c.dns != nil {
		c.dns.maybeRefresh()
		c.dns.wait(ctx)
	}
	v := c.view()
	if v.pick == nil {
		sh.stats.UpstreamCxNoneHealthy.Add(1)
		return nil, noHealthy()
	}
	hash := o.HashKey
	for i := 0; ; i++ {
		h := v.pick.pick(hash, o.HasHash)
		if len(o.Exclude) == 0 || i >= maxHostSelection || !slices.Contains(o.Exclude, h.addr) {
			return h, nil
		}
		// A consistent-hash policy would pick the same host again: move the key.
		hash = mix64(hash + uint64(i) + 1)
	}
}

// originalDstHost returns (creating on first use) the host for an
// ORIGINAL_DST destination: ip:port, or host:port resolved at connect
// time (an extension of Envoy, for explicit-proxy mode).
func (sh *shared) originalDstHost(dst string) (*host, error) {
	if dst == "" {
		sh.stats.UpstreamCxNoneHealthy.Add(1)
		return nil, noHealthy()
	}
	if v, ok := sh.dynLoad(dst); ok {
		return v, nil
	}
	hostName, port, err := net.SplitHostPort(dst)
	if err != nil {
		sh.stats.UpstreamCxNoneHealthy.Add(1)
		return nil, &rflag.Error{Flag: rflag.UH, Status: 503, Details: "no_healthy_upstream", Err: err}
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil || p == 0 {
		return nil, &rflag.Error{Flag: rflag.UH, Status: 503, Details: "no_healthy_upstream",
			Err: errors.New("original destination: bad port")}
	}
	if sh.cfg.origPortOverri != 0 {
		p = uint64(sh.cfg.origPortOverri)
	}
	addr, resolve := "", false
	if ip, err := netip.ParseAddr(hostName); err == nil {
		addr = netip.AddrPortFrom(ip.Unmap(), uint16(p)).String()
	} else {
		addr, resolve = net.JoinHostPort(hostName, strconv.Itoa(int(p))), true
	}
	sh.dynMu.Lock()
	defer sh.dynMu.Unlock()
	if h, ok := sh.dyn[dst]; ok {
		return h, nil
	}
	if len(sh.dyn) >= maxDynamicHosts {
		sh.evictIdleLocked()
	}
	h := newHost(sh, addr, sh.cfg.tls, resolve)
	// Copy-on-write so lookups need no lock.
	next := make(map[string]*host, len(sh.dyn)+1)
	for k, v := range sh.dyn {
		next[k] = v
	}
	next[dst] = h
	sh.dyn = next
	sh.dynSnap.Store(&next)
	return h, nil
}

// maxDynamicHosts bounds ORIGINAL_DST hosts; beyond it idle ones are
// dropped (Envoy cleans them up every cleanup_interval).
const maxDynamicHosts = 1024

func (sh *shared) dynLoad(k string) (*host, bool) {
	m := sh.dynSnap.Load()
	if m == nil {
		return nil, false
	}
	h, ok := (*m)[k]
	return h, ok
}

func (sh *shared) evictIdleLocked() {
	next := make(map[string]*host, len(sh.dyn))
	for k, h := range sh.dyn {
		if h.active.Load() == 0 && h.cxAct.Load() == 0 {
			h.close()
			continue
		}
		next[k] = h
	}
	sh.dyn = next
}

// RoundTrip sends one attempt of an HTTP request: it picks a host, applies
// the circuit breakers, sends over the host's pool and reports the outcome
// to outlier detection. Errors are *rflag.Error: UH (no healthy host), UO
// (overflow), UF (connect failure), UC (reset before the response), all
// with status 503; a context deadline gives UT/504.
//
// The response body must be closed; the attempt stays active (max_requests,
// least-request load) until then. A 101 response's Body is an
// io.ReadWriteCloser over the upgraded connection.
func (c *Cluster) RoundTrip(req *http.Request, o *RequestOptions) (*http.Response, *Attempt, error) {
	if o == nil {
		o = &noOptions
	}
	sh := c.sh
	st := sh.stats
	retry := false
	if o.Retry {
		st.UpstreamRqRetry.Add(1)
		if !tryAcquire(&st.RqActiveRetries, sh.cfg.maxRetries) {
			st.UpstreamRqRetryOverflow.Add(1)
			return nil, nil, overflow()
		}
		retry = true
	}
	ctx := req.Context()
	h, err := c.pickHost(ctx, o)
	if err != nil {
		if retry {
			st.RqActiveRetries.Add(-1)
		}
		return nil, nil, err
	}
	x := &exchange{att: Attempt{Host: h.addr}, h: h, st: st, retry: retry}
	att := &x.att
	if !tryAcquire(&st.UpstreamRqActive, sh.cfg.maxRequests) {
		st.UpstreamRqPendingOverflow.Add(1)
		if retry {
			st.RqActiveRetries.Add(-1)
		}
		return nil, att, overflow()
	}
	st.UpstreamRqTotal.Add(1)
	h.rqTot.Add(1)
	h.active.Add(1)
	useH2 := sh.cfg.proto == protoHTTP2 || (sh.cfg.proto == protoDownstream && o.Downstream == downstream.HTTP2)
	var resp *http.Response
	if useH2 {
		resp, err = h.roundTripH2(req, att, x.done)
	} else {
		resp, err = h.roundTripH1(req, x)
	}
	if err != nil {
		x.done()
		h.rqErr.Add(1)
		err = c.classify(ctx, h, err)
		return nil, att, err
	}
	st.countStatus(resp.StatusCode)
	if resp.StatusCode >= 500 {
		h.rqErr.Add(1)
	}
	sh.od.report(h, resp.StatusCode)
	return resp, att, nil
}

// classify turns a transport error into an *rflag.Error and reports it to
// outlier detection (Envoy maps local-origin failures to 503, timeouts to
// 504, when external and local errors are not split).
func (c *Cluster) classify(ctx context.Context, h *host, err error) error {
	od := c.sh.od
	if ctx.Err() != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			od.report(h, 504)
			return &rflag.Error{Flag: rflag.UT, Status: 504, Details: "upstream_response_timeout", Err: ctx.Err()}
		}
		return &rflag.Error{Flag: rflag.DC, Status: 503, Details: "downstream_remote_disconnect", Err: ctx.Err()}
	}
	var fe *rflag.Error
	if errors.As(err, &fe) {
		if fe.Flag != rflag.UO {
			od.report(h, 503)
		}
		return fe
	}
	od.report(h, 503)
	c.sh.stats.UpstreamRqRemoteReset.Add(1)
	return upstreamReset(err)
}

// exchange is one attempt's state in one allocation (profile: the
// attempt, the accounting closure and the response body were three per
// request): the attempt reported to the caller, the HTTP/1 response body,
// and the accounting done undoes when the body ends.
type exchange struct {
	att   Attempt
	body  h1body
	h     *host
	st    *Stats
	retry bool
}

// done ends the attempt's accounting (max_requests, least-request load).
func (x *exchange) done() {
	x.h.active.Add(-1)
	x.st.UpstreamRqActive.Add(-1)
	if x.retry {
		x.st.RqActiveRetries.Add(-1)
	}
}

func (h *host) roundTripH1(req *http.Request, x *exchange) (*http.Response, error) {
	att := &x.att
	ctx := req.Context()
	fresh := false
	bodiless := req.Body == nil || req.Body == http.NoBody
	for attempt := 0; ; attempt++ {
		pc, reused, err := h.getH1(ctx, fresh, bodiless)
		if err != nil {
			return nil, err
		}
		pc.uses++
		att.LocalAddr = pc.local
		att.Host = pc.remote
		resp, stop, wrote, err := pc.roundTrip(ctx, req)
		if err != nil {
			h.putH1(pc, false)
			if attempt > 0 || ctx.Err() != nil {
				return nil, err
			}
			hasBody := req.Body != nil && req.Body != http.NoBody
			switch {
			case pc.out.n == 0 && (!hasBody || !pc.unsentOver):
				// Not a byte of the request reached the upstream: resend
				// it on a fresh connection whatever the method (Envoy's
				// reset before request sent), with the body read so far.
				if hasBody {
					req = resend(req, pc.unsent)
				}
			case reused && !hasBody:
				// A kept-alive connection the server closed meanwhile:
				// try a fresh one once when there is no body to lose.
			default:
				return nil, err
			}
			fresh = true
			continue
		}
		if resp.StatusCode == http.StatusSwitchingProtocols {
			// The upgraded stream outlives the request's context.
			if !stop() || wrote != nil {
				resp.Body.Close()
				h.putH1(pc, false)
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				return nil, errors.New("upgrade request with a body")
			}
			pc.nc.SetDeadline(time.Time{})
			resp.Body = &upgraded{c: pc, done: x.done}
			return resp, nil
		}
		b := &x.body
		b.rc, b.c, b.resp, b.req, b.x, b.stop, b.wrote = resp.Body, pc, resp, req, x, stop, wrote
		resp.Body = b
		return resp, nil
	}
}

// Dial opens a TCP connection to a host of the cluster for the TCP proxy:
// it applies max_connections (UO), connect_timeout and upstream TLS, and
// reports connect success or failure to outlier detection. Closing the
// returned conn releases the connection slot. The connection belongs to
// the caller: Set.Close does not cut it.
func (c *Cluster) Dial(ctx context.Context, o *RequestOptions) (net.Conn, *Attempt, error) {
	if o == nil {
		o = &noOptions
	}
	sh := c.sh
	h, err := c.pickHost(ctx, o)
	if err != nil {
		return nil, nil, err
	}
	att := &Attempt{Host: h.addr}
	if !sh.reserveConn() {
		sh.stats.UpstreamCxOverflow.Add(1)
		return nil, att, overflow()
	}
	h.active.Add(1)
	nc, err := h.dial(ctx, alpnRaw)
	h.active.Add(-1)
	if err != nil {
		sh.stats.UpstreamCxActive.Add(-1)
		h.rqErr.Add(1)
		sh.od.report(h, 503)
		return nil, att, connectFailure(err)
	}
	sh.od.report(h, 200)
	att.LocalAddr = nc.LocalAddr().String()
	if h.resolve {
		att.Host = nc.RemoteAddr().String()
	}
	return &tcpConn{Conn: nc, h: h}, att, nil
}

// tcpConn is a TCP proxy upstream connection.
type tcpConn struct {
	net.Conn
	h    *host
	once sync.Once
}

func (t *tcpConn) Close() error {
	err := t.Conn.Close()
	t.once.Do(t.h.connClosed)
	return err
}

// CloseWrite half-closes when the underlying connection supports it.
func (t *tcpConn) CloseWrite() error {
	if cw, ok := t.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.New("close write not supported")
}

// resend returns req with a body that replays the bytes an attempt read
// before failing, then reads on from the original body.
func resend(req *http.Request, read []byte) *http.Request {
	r2 := *req
	r2.Body = struct {
		io.Reader
		io.Closer
	}{io.MultiReader(bytes.NewReader(read), req.Body), req.Body}
	return &r2
}
