package hcm

import (
	"bufio"
	"bytes"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"

	"github.com/weftmesh/weft/internal/proxy/h1head"
)

// readRequest reads one request head from br with the result
// http.ReadRequest gives for the same bytes. The lean path's common head
// ("METHOD /origin-form HTTP/1.1", whole in the buffer, no
// Transfer-Encoding, at most one Content-Length of digits, one Host at
// most, fields h1head takes) is parsed here; any other is left unread
// for http.ReadRequest, which then decides it and its errors. Profile
// (sidecar pair, 64 connections): http.ReadRequest was 6.6% of the
// proxy's CPU.
func readRequest(br *bufio.Reader) (*http.Request, error) {
	if _, err := br.Peek(1); err != nil {
		return nil, err // as http.ReadRequest says it
	}
	if req := parseRequest(br); req != nil {
		return req, nil
	}
	return http.ReadRequest(br)
}

// leanRequest reads the request head at the front of br (head: its
// bytes) for the lean path. lean is false when net/http must serve it
// (the caller replays the bytes), bad when its framing is rejected
// (framingError). A head the own parser reads passed h1head's field
// checks and has origin-form, no Transfer-Encoding and one Host at most,
// so the scans net/http's heads need (framingError, hostFields and
// fastRequest's field checks) are skipped for it. Profile (server
// sidecar, bench max-h1): the three were about 3% of the proxy's CPU.
func leanRequest(br *bufio.Reader, head []byte) (req *http.Request, lean, bad bool) {
	if _, err := br.Peek(1); err != nil {
		return nil, false, false
	}
	if req = parseRequest(br); req != nil {
		// One Host field exactly (net/http answers 400 otherwise): the
		// parser took at most one, and the target is not absolute.
		return req, leanShape(req), false
	}
	if framingError(head) != "" {
		return nil, false, true
	}
	req, err := http.ReadRequest(br) // drops the Host field: counted in head
	if err != nil || !fastRequest(req) || hostFields(head) != 1 {
		return nil, false, false
	}
	return req, true, false
}

// reqAlloc holds what one request needs in one allocation: most heads
// have at most eight fields.
type reqAlloc struct {
	req  http.Request
	url  url.URL
	body h1head.LengthBody
	vals [8]string
}

// parseTarget sets u to what url.ParseRequestURI gives for an
// origin-form target whose path bytes all stand for themselves (net/url
// neither unescapes nor escapes them: no '%'), and reports false, u
// unset, for any other target. Profile (BenchmarkProxiedGET): the URL
// was one allocation per request and net/url's parse about 1% of the
// proxy's CPU. FuzzParseTarget holds it to net/url.
func parseTarget(target string, u *url.URL) bool {
	path, query := target, ""
	q := strings.IndexByte(target, '?')
	if q >= 0 {
		path, query = target[:q], target[q+1:]
	}
	if len(path) == 0 || path[0] != '/' {
		return false
	}
	for i := 0; i < len(path); i++ {
		if !pathByte[path[i]] {
			return false
		}
	}
	for i := 0; i < len(query); i++ {
		if c := query[i]; c < ' ' || c == 0x7f {
			return false // net/url rejects control bytes
		}
	}
	*u = url.URL{Path: path}
	switch {
	case q == len(target)-1:
		u.ForceQuery = true // a lone trailing '?'
	case q >= 0:
		u.RawQuery = query
	}
	return true
}

// pathByte: the visible ASCII bytes that net/url's path escaping leaves
// as they are, taken from net/url itself ('%' and '?' excluded).
var pathByte = func() (ok [256]bool) {
	for c := byte(0x21); c < 0x7f; c++ {
		if c == '%' || c == '?' {
			continue
		}
		p := "/" + string(rune(c))
		ok[c] = (&url.URL{Path: p}).EscapedPath() == p
	}
	return
}()

// parseRequest returns the request whose head is at the front of br's
// buffer and consumes the head, or returns nil having consumed nothing.
func parseRequest(br *bufio.Reader) *http.Request {
	buf, _ := br.Peek(br.Buffered())
	line, hn, lines, ok := h1head.Scan(buf)
	if !ok {
		return nil
	}
	const proto = " HTTP/1.1"
	sp := bytes.IndexByte(line, ' ')
	if sp < 1 || len(line) < sp+2+len(proto) || line[sp+1] != '/' || string(line[len(line)-len(proto):]) != proto ||
		bytes.IndexByte(line[sp+1:len(line)-len(proto)], ' ') >= 0 {
		return nil
	}
	for _, c := range line[:sp] {
		if !httpguts.IsTokenRune(rune(c)) {
			return nil
		}
	}
	s := string(buf[:hn-2]) // the one string all values share
	target := s[sp+1 : len(line)-len(proto)]
	a := new(reqAlloc)
	u := &a.url
	if !parseTarget(target, u) {
		var err error
		if u, err = url.ParseRequestURI(target); err != nil {
			return nil
		}
	}
	h := make(http.Header, lines)
	vals := a.vals[:]
	if lines > len(vals) {
		vals = make([]string, lines)
	}
	h1head.Parse(s[len(line)+2:], h, vals)
	hosts := h["Host"]
	if len(hosts) > 1 {
		return nil
	}
	if _, ok := h["Transfer-Encoding"]; ok {
		return nil
	}
	n := int64(0) // no Content-Length: no body
	if cl, ok := h["Content-Length"]; ok {
		if len(cl) != 1 {
			return nil
		}
		if n = h1head.Length(cl[0]); n < 0 {
			return nil
		}
	}
	req := &a.req
	*req = http.Request{
		Method:     s[:sp],
		URL:        u,
		Proto:      proto[1:],
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     h,
		Host:       u.Host,
		RequestURI: target,
		// As net/http's shouldClose for a request: "close" stays.
		Close:         httpguts.HeaderValuesContainsToken(h["Connection"], "close"),
		ContentLength: n,
		Body:          http.NoBody,
	}
	if req.Host == "" && len(hosts) == 1 {
		req.Host = hosts[0]
	}
	if n > 0 {
		a.body.Reset(br, n)
		req.Body = &a.body
	}
	delete(h, "Host") // as http.ReadRequest
	br.Discard(hn)
	return req
}
