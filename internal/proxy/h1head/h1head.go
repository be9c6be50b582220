// Package h1head reads the field section of an HTTP/1.1 message head as
// net/http does (textproto's ReadMIMEHeader), for heads that need no
// judgement: whole in a buffer, CRLF lines, token names, valid values, no
// folding. The caller parses its own first line and framing and hands any
// other head to net/http, which then decides it (and its errors).
//
// The values are substrings of one string per head, so a head costs one
// string, the map and one slice backing array (textproto makes one string
// per value). Profile (sidecar pair, 64 connections): net/http's
// ReadResponse and ReadRequest were 10.5% and 6.6% of the proxy's CPU.
package h1head

import (
	"bytes"
	"net/http"
	"strings"
	"sync"

	"golang.org/x/net/http/httpguts"
)

// Scan finds the head at the front of buf. It returns the first line, the
// head's length through the empty line and the number of field lines; ok
// is false when the head is incomplete or has a line textproto would read
// another way (a bare CR or LF, a folded or invalid field line).
func Scan(buf []byte) (first []byte, n, fields int, ok bool) {
	fields = -1
	for {
		i := bytes.IndexByte(buf[n:], '\n')
		if i < 1 || buf[n+i-1] != '\r' {
			return nil, 0, 0, false // incomplete, or a bare LF
		}
		line := buf[n : n+i-1]
		n += i + 1
		switch {
		case fields < 0:
			if len(line) == 0 || bytes.IndexByte(line, '\r') >= 0 {
				return nil, 0, 0, false
			}
			first = line
		case len(line) == 0:
			return first, n, fields, true
		case !validLine(line):
			return nil, 0, 0, false
		}
		fields++
	}
}

// validLine reports whether a field line is one textproto reads as
// "name: value" without folding or error: a token name, then only
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

// Parse adds the field lines of s (each with its CRLF, as Scan checked
// them) to h, with textproto's canonical names and trimmed values, and
// applies net/http's Pragma: no-cache fix-up. Single values are cut from
// vals (at least one per line).
func Parse(s string, h http.Header, vals []string) {
	var kbuf [64]byte
	for len(s) > 0 {
		i := strings.Index(s, "\r\n")
		line := s[:i]
		s = s[i+2:]
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
}

// canonicalKey returns k in canonical form (net/http's CanonicalHeaderKey
// for a token), without allocating when k already is canonical or is a
// common field name.
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

// commonKeys interns the canonical names sent most; read-only.
var commonKeys = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Encoding", "Accept-Language", "Accept-Ranges", "Age",
		"Authorization", "Cache-Control", "Connection", "Content-Encoding", "Content-Length", "Content-Type",
		"Cookie", "Date", "Etag", "Expect", "Expires", "Host", "Keep-Alive", "Last-Modified", "Location",
		"Pragma", "Server", "Set-Cookie", "Trailer", "Transfer-Encoding", "Upgrade", "User-Agent", "Vary",
		"Via", "X-Content-Type-Options", "X-Envoy-Upstream-Service-Time", "X-Forwarded-For",
		"X-Forwarded-Proto", "X-Request-Id"} {
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

// Length parses a Content-Length of 1 to 18 digits; -1 for anything else
// (a value net/http then judges).
func Length(s string) int64 {
	if len(s) == 0 || len(s) > 18 {
		return -1
	}
	var n int64
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return -1
		}
		n = n*10 + int64(s[i]-'0')
	}
	return n
}

// headerPool holds header maps for parsed heads whose owner gives them
// back (PutHeader) once nothing refers to them: a map and its table were
// two allocations and about 350 bytes per head (issue 17).
var headerPool = sync.Pool{New: func() any { return make(http.Header, 8) }}

// NewHeader returns an empty header map, pooled.
func NewHeader() http.Header { return headerPool.Get().(http.Header) }

// PutHeader gives h back to the pool; the caller and everything it handed
// h to must be done with it (the values, strings, stay valid).
func PutHeader(h http.Header) {
	if len(h) > 64 {
		return // an unusual head: let the GC have its large table
	}
	clear(h)
	headerPool.Put(h)
}
