package cluster

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// readResponse reads one HTTP/1.1 response head from br for req, with the
// result http.ReadResponse gives for the same bytes. The common head (one
// that is whole in br's buffer, CRLF lines, no Transfer-Encoding, at most
// one Content-Length, no obs-fold, nothing net/http would reject) is
// parsed here into one string that the status and all header values
// share; any other head is left unread for http.ReadResponse. Profile
// (sidecar pair, 64 connections): http.ReadResponse was 10.5% of the
// proxy's CPU, mostly textproto's per-value strings and map building.
func readResponse(br *bufio.Reader, req *http.Request) (*http.Response, error) {
	if _, err := br.Peek(1); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // as http.ReadResponse says it
		}
		return nil, err
	}
	if resp := parseResponse(br, req); resp != nil {
		return resp, nil
	}
	return http.ReadResponse(br, req)
}

// parseResponse returns the response whose head is at the front of br's
// buffer and consumes the head, or returns nil having consumed nothing.
func parseResponse(br *bufio.Reader, req *http.Request) *http.Response {
	buf, _ := br.Peek(br.Buffered())
	// One pass over the head: every line ends in CRLF (a bare CR or LF
	// splits lines in ways textproto decides), the status line is
	// "HTTP/1.x ddd[ reason]", each field line is valid. Nothing is
	// allocated before the head is known to be one this parser takes.
	lines := -1 // field lines
	hn := 0     // head length, through the empty line
	for {
		i := bytes.IndexByte(buf[hn:], '\n')
		if i < 1 || buf[hn+i-1] != '\r' {
			return nil // incomplete, or a bare LF
		}
		line := buf[hn : hn+i-1]
		hn += i + 1
		if lines < 0 {
			if len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
				!digit(line[9]) || !digit(line[10]) || !digit(line[11]) || (len(line) > 12 && line[12] != ' ') ||
				bytes.IndexByte(line, '\r') >= 0 {
				return nil
			}
		} else if len(line) == 0 {
			break
		} else if !validLine(line) {
			return nil
		}
		lines++
	}
	head := buf[:hn-2] // every line with its CRLF
	s := string(head)  // the one string all values share
	a := new(respAlloc)
	resp := &a.resp
	*resp = http.Response{
		Proto:      s[:8],
		ProtoMajor: 1,
		ProtoMinor: int(s[7] - '0'),
		StatusCode: int(s[9]-'0')*100 + int(s[10]-'0')*10 + int(s[11]-'0'),
		Request:    req,
	}
	i := strings.Index(s, "\r\n")
	resp.Status = s[9:i]
	h := make(http.Header, lines)
	vals := a.vals[:]
	if lines > len(vals) {
		vals = make([]string, lines)
	}
	var kbuf [64]byte
	for rest := s[i+2:]; len(rest) > 0; {
		i = strings.Index(rest, "\r\n")
		line := rest[:i]
		rest = rest[i+2:]
		c := strings.IndexByte(line, ':')
		key := canonicalKey(line[:c], &kbuf)
		v := trimOWS(line[c+1:])
		if vv, ok := h[key]; ok {
			h[key] = append(vv, v)
			continue
		}
		vals[0] = v
		h[key] = vals[:1:1]
		vals = vals[1:]
	}
	if hp, ok := h["Pragma"]; ok && hp[0] == "no-cache" {
		if _, ok := h["Cache-Control"]; !ok {
			h["Cache-Control"] = []string{"no-cache"}
		}
	}
	resp.Header = h
	if _, ok := h["Transfer-Encoding"]; ok {
		return nil
	}
	n := int64(-1) // Content-Length
	if cl, ok := h["Content-Length"]; ok {
		if len(cl) != 1 {
			return nil
		}
		if n = parseLength(cl[0]); n < 0 {
			return nil
		}
	}
	// Connection: as net/http's shouldClose (it drops "close" on 1.1).
	conn := h["Connection"]
	hasClose := httpguts.HeaderValuesContainsToken(conn, "close")
	if resp.ProtoMinor == 0 {
		resp.Close = hasClose || !httpguts.HeaderValuesContainsToken(conn, "keep-alive")
	} else {
		resp.Close = hasClose
		if hasClose {
			delete(h, "Connection")
		}
	}
	// Framing, RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; else
	// Content-Length; else the body runs to the connection's close.
	length := n
	code := resp.StatusCode
	head0 := req != nil && req.Method == http.MethodHead
	if head0 || code/100 == 1 || code == 204 || code == 304 {
		length = 0
	}
	resp.ContentLength = length
	if head0 {
		resp.ContentLength = n
	}
	if length < 0 && !(code/100 == 1 || code == 204 || code == 304) {
		resp.Close = true
	}
	switch {
	case length == 0:
		resp.Body = http.NoBody
	case length > 0:
		a.body = lenBody{br: br, left: length}
		resp.Body = &a.body
	case resp.Close:
		resp.Body = &closeBody{br: br}
	default:
		resp.Body = http.NoBody
	}
	br.Discard(hn)
	return resp
}

// respAlloc holds what one response needs in one allocation: most
// upstream heads have at most eight fields.
type respAlloc struct {
	resp http.Response
	body lenBody
	vals [8]string
}

func digit(c byte) bool { return '0' <= c && c <= '9' }

// validLine reports whether a header line is one textproto reads as a
// "name: value" line without folding or error: a token name, then only
// visible characters, SP, HTAB and obs-text.
func validLine(l []byte) bool {
	c := bytes.IndexByte(l, ':')
	if c < 1 {
		return false
	}
	for _, b := range l[:c] {
		if !httpguts.IsTokenRune(rune(b)) {
			return false
		}
	}
	for _, b := range l[c+1:] {
		if b < ' ' && b != '\t' || b == 0x7f {
			return false
		}
	}
	return true
}

// canonicalKey returns k in canonical form (net/http's CanonicalHeaderKey
// for a token), without allocating when k already is canonical or is a
// common header.
func canonicalKey(k string, buf *[64]byte) string {
	upper := true
	canon := true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canon = false
			break
		}
		upper = c == '-'
	}
	if canon {
		return k
	}
	var b []byte
	if len(k) <= len(buf) {
		b = buf[:len(k)]
	} else {
		b = make([]byte, len(k))
	}
	upper = true
	for i := 0; i < len(k); i++ {
		c := k[i]
		if upper && 'a' <= c && c <= 'z' {
			c -= 'a' - 'A'
		} else if !upper && 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[i] = c
		upper = c == '-'
	}
	if v, ok := commonKeys[string(b)]; ok {
		return v
	}
	return string(b)
}

// commonKeys interns the canonical names upstreams send most; read-only.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept-Ranges", "Age", "Cache-Control", "Connection", "Content-Encoding",
		"Content-Length", "Content-Type", "Date", "Etag", "Expires", "Keep-Alive", "Last-Modified",
		"Location", "Server", "Set-Cookie", "Transfer-Encoding", "Vary", "Via", "X-Content-Type-Options",
		"X-Envoy-Upstream-Service-Time", "X-Request-Id", "Trailer", "Upgrade", "Pragma"} {
		m[k] = k
	}
	return m
}()

// trimOWS trims SP and HTAB around a field value.
func trimOWS(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// parseLength parses a Content-Length of 1 to 18 digits; -1 otherwise (a
// value http.ReadResponse then judges).
func parseLength(s string) int64 {
	if len(s) == 0 || len(s) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if !digit(s[i]) {
			return -1
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

// lenBody is a Content-Length body: like net/http's, it returns io.EOF
// with the last bytes (so the connection is reusable at once) and
// io.ErrUnexpectedEOF when the connection ends early. Not safe for
// concurrent use; the pool's h1body serialises Close and Read.
type lenBody struct {
	br     *bufio.Reader
	left   int64
	closed bool
}

func (b *lenBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		b.left, err = 0, io.ErrUnexpectedEOF // then io.EOF, as net/http
	} else if err == nil && b.left == 0 {
		err = io.EOF
	}
	return n, err
}

// Close drains what is left, as net/http's body does, so the connection
// stays in step.
func (b *lenBody) Close() error {
	if b.closed {
		return nil
	}
	_, err := io.Copy(io.Discard, b)
	b.closed = true
	return err
}

// closeBody is a body delimited by the connection's close.
type closeBody struct {
	br     *bufio.Reader
	eof    bool
	closed bool
}

func (b *closeBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.eof {
		return 0, io.EOF
	}
	n, err := b.br.Read(p)
	if err == io.EOF {
		b.eof = true
	}
	return n, err
}

func (b *closeBody) Close() error {
	b.closed = true
	return nil
}
