package cluster

import (
	"bufio"
	"io"
	"net/http"

	"golang.org/x/net/http/httpguts"

	"github.com/weftmesh/weft/internal/proxy/h1head"
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
	line, hn, lines, ok := h1head.Scan(buf)
	// Status line: "HTTP/1.x ddd[ reason]".
	if !ok || len(line) < 12 || string(line[:7]) != "HTTP/1." || (line[7] != '0' && line[7] != '1') || line[8] != ' ' ||
		!digit(line[9]) || !digit(line[10]) || !digit(line[11]) || (len(line) > 12 && line[12] != ' ') {
		return nil
	}
	s := string(buf[:hn-2]) // the one string all values share
	a := new(respAlloc)
	resp := &a.resp
	*resp = http.Response{
		Proto:      s[:8],
		ProtoMajor: 1,
		ProtoMinor: int(s[7] - '0'),
		StatusCode: int(s[9]-'0')*100 + int(s[10]-'0')*10 + int(s[11]-'0'),
		Status:     s[9:len(line)],
		Request:    req,
	}
	h := h1head.NewHeader() // the lean writer gives it back (filter.HeaderAdopter)
	vals := a.vals[:]
	if lines > len(vals) {
		vals = make([]string, lines)
	}
	h1head.Parse(s[len(line)+2:], h, vals)
	resp.Header = h
	if _, ok := h["Transfer-Encoding"]; ok {
		h1head.PutHeader(h)
		return nil
	}
	n := int64(-1) // Content-Length
	if cl, ok := h["Content-Length"]; ok {
		if len(cl) != 1 {
			h1head.PutHeader(h)
			return nil
		}
		if n = h1head.Length(cl[0]); n < 0 {
			h1head.PutHeader(h)
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
		a.body.Reset(br, length)
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
	body h1head.LengthBody
	vals [8]string
}

func digit(c byte) bool { return '0' <= c && c <= '9' }

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
