package router

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/weftmesh/weft/internal/proxy/filter"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/route"
)

// upgradeType returns the lower-case protocol of an HTTP/1.1 Upgrade
// request ("websocket"), or "".
func upgradeType(r *http.Request) string {
	if r.ProtoMajor != 1 {
		return ""
	}
	up := r.Header.Get("Upgrade")
	if up == "" {
		return ""
	}
	for _, c := range r.Header["Connection"] {
		for _, f := range strings.Split(c, ",") {
			if strings.EqualFold(strings.TrimSpace(f), "upgrade") {
				return strings.ToLower(up)
			}
		}
	}
	return ""
}

func (rt *Router) dial(s *filter.Stream, up filter.Upstream, orig string) (net.Conn, error) {
	opts := filter.Attempt{OriginalDst: orig}
	opts.Protocol = protocolOf(s.Req)
	if a := s.Route.Action; len(a.Hash) > 0 {
		opts.HashKey, opts.HasHash = a.HashKey(s.Req, sourceIP(s))
	}
	s.Info.Attempts = 1
	conn, host, err := up.Dial(s.Req.Context(), &opts)
	s.Info.Host = host
	if err != nil {
		ctx := s.Req.Context()
		return nil, rt.classify(ctx, ctx, ctx, err)
	}
	return conn, nil
}

// connect serves a CONNECT request (explicit proxy): dial the cluster,
// answer 200, then splice bytes both ways.
func (rt *Router) connect(s *filter.Stream, up filter.Upstream) error {
	conn, err := rt.dial(s, up, originalDst(s))
	if err != nil {
		return err
	}
	defer conn.Close()
	s.Info.Details = "via_upstream"
	if s.Req.ProtoMajor == 1 {
		dconn, brw, err := http.NewResponseController(s.W).Hijack()
		if err != nil {
			return &rflag.Error{Flag: rflag.DPE, Status: http.StatusInternalServerError, Details: "hijack_failed", Err: err}
		}
		defer dconn.Close()
		s.Info.Status = http.StatusOK
		brw.WriteString("HTTP/1.1 200 Connection established\r\n\r\n")
		if err := brw.Flush(); err != nil {
			s.Info.Flags |= rflag.DC
			return nil
		}
		in, out := splice(dconn, brw.Reader, conn, conn)
		s.Info.BytesIn += in
		s.Info.BytesOut += out
		return nil
	}
	// HTTP/2 CONNECT: the stream's body and response carry the tunnel.
	s.W.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(s.W)
	rc.Flush()
	go func() {
		io.Copy(conn, s.Req.Body)
		closeWrite(conn)
	}()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	for {
		n, rerr := conn.Read(*bp)
		if n > 0 {
			if _, werr := s.W.Write((*bp)[:n]); werr != nil {
				return nil
			}
			rc.Flush()
		}
		if rerr != nil {
			return nil
		}
	}
}

// upgrade forwards an HTTP/1.1 Upgrade (WebSocket) request over its own
// upstream connection; on 101 both sides are spliced.
func (rt *Router) upgrade(s *filter.Stream, up filter.Upstream, wc *route.WeightedCluster) error {
	r := s.Req
	conn, err := rt.dial(s, up, originalDst(s))
	if err != nil {
		return err
	}
	defer conn.Close()
	upProto := r.Header.Get("Upgrade")
	stripHop(r.Header)
	r.Header["Connection"] = []string{"Upgrade"}
	r.Header["Upgrade"] = []string{upProto}
	if p, ok := s.Route.RewritePath(r.URL.EscapedPath()); ok {
		r.URL.Opaque = p
	}
	if a := s.Route.Action; a.HostRewrite != "" {
		r.Host = a.HostRewrite
	}
	requestHeaders(s, wc, r.Header)
	if _, ok := r.Header["User-Agent"]; !ok {
		r.Header["User-Agent"] = []string{""} // keep Request.Write from inventing one
	}
	r.RequestURI = ""
	if err := r.Write(conn); err != nil {
		return &rflag.Error{Flag: rflag.UC, Status: http.StatusServiceUnavailable,
			Details: "upstream_reset_before_response_started{connection_termination}", Err: err}
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, r)
	if err != nil {
		return &rflag.Error{Flag: rflag.UC, Status: http.StatusServiceUnavailable,
			Details: "upstream_reset_before_response_started{connection_termination}", Err: err}
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		// The upstream declined: an ordinary response on a one-off connection.
		return rt.respond(s, wc, resp, r.Context(), nil)
	}
	dconn, brw, err := http.NewResponseController(s.W).Hijack()
	if err != nil {
		return &rflag.Error{Flag: rflag.DPE, Status: http.StatusInternalServerError, Details: "hijack_failed", Err: err}
	}
	defer dconn.Close()
	h := resp.Header
	rt.responseHeaders(s, wc, h)
	s.Info.Status, s.Info.Details = resp.StatusCode, "via_upstream"
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	h.Write(brw)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		s.Info.Flags |= rflag.DC
		return nil
	}
	in, out := splice(dconn, brw.Reader, conn, br)
	s.Info.BytesIn += in
	s.Info.BytesOut += out
	return nil
}

// splice copies downstream→upstream and upstream→downstream until both
// directions end, half-closing as each finishes. dr and ur read the
// connections through any bytes already buffered.
func splice(down net.Conn, dr io.Reader, up net.Conn, ur io.Reader) (in, out int64) {
	var wg sync.WaitGroup
	var nin atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		n, _ := io.Copy(up, dr)
		nin.Store(n)
		closeWrite(up)
	}()
	out, err := io.Copy(down, ur)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		// Upstream reset or downstream gone: tear both down.
		up.Close()
		down.Close()
	} else {
		closeWrite(down)
	}
	wg.Wait()
	return nin.Load(), out
}

type closeWriter interface{ CloseWrite() error }

func closeWrite(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}
