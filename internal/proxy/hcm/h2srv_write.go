package hcm

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2sWriteBuf: a response body is buffered up to this much before DATA
// is sent (the handler's end or Flush sends it sooner).
const h2sWriteBuf = 16 << 10

// h2sWriter is a stream's http.ResponseWriter. Only the handler's
// goroutine calls it (http.ResponseWriter's contract), except
// sendContinue and SetReadDeadline.
type h2sWriter struct {
	st          *h2sStream
	h           http.Header
	status      int
	wroteHeader bool
	head        bool
	hdrSent     atomic.Bool // the final HEADERS were encoded (set under wmu)
	ended       bool
	buf         []byte
	bufp        *[]byte // buf's pooled array, given back by release
}

// h2sBufPool holds response body buffers (h2sWriteBuf, grown by at most
// one write).
var h2sBufPool = sync.Pool{New: func() any { b := make([]byte, 0, h2sWriteBuf); return &b }}

// release gives the body buffer back when the response ended.
func (w *h2sWriter) release() {
	if w.bufp != nil {
		if cap(w.buf) <= 2*h2sWriteBuf {
			*w.bufp = w.buf[:0]
			h2sBufPool.Put(w.bufp)
		}
		w.bufp, w.buf = nil, nil
	}
}

var (
	_ http.Flusher = (*h2sWriter)(nil)
)

func (w *h2sWriter) Header() http.Header { return w.h }

func (w *h2sWriter) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		code = http.StatusInternalServerError
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		w.sendInfo(code)
		return
	}
	w.wroteHeader, w.status = true, code
}

func (w *h2sWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !h2sBodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.head {
		return len(p), nil // counted, never sent (as x/net)
	}
	if w.ended || w.st.dead.Load() {
		return 0, errH2StreamClosed
	}
	if len(w.buf) == 0 && len(p) >= h2sWriteBuf {
		// Large writes go out from the caller's buffer.
		own := w.buf
		w.buf = p
		err := w.send(false)
		w.buf = own
		if err != nil {
			return 0, err
		}
		return len(p), nil
	}
	if w.buf == nil {
		w.bufp = h2sBufPool.Get().(*[]byte)
		w.buf = (*w.bufp)[:0]
	}
	w.buf = append(w.buf, p...)
	if len(w.buf) >= h2sWriteBuf {
		if err := w.send(false); err != nil {
			return 0, err
		}
	}
	return len(p), nil
}

func (w *h2sWriter) Flush() {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	w.send(false)
}

// SetReadDeadline serves http.ResponseController: request body reads
// fail after t.
func (w *h2sWriter) SetReadDeadline(t time.Time) error {
	if b := w.st.body; b != nil {
		b.setDeadline(t)
	}
	return nil
}

// sendInfo sends a 1xx response at once.
func (w *h2sWriter) sendInfo(code int) {
	st := w.st
	sc := st.sc
	if st.dead.Load() {
		return
	}
	frame := sc.frameSize()
	sc.write(func() error {
		if w.hdrSent.Load() {
			return nil
		}
		blk := sc.encode(code, w.h, "", "", "", nil)
		return sc.writeBlock(st.id, blk, false, frame)
	})
}

// sendContinue answers "Expect: 100-continue" when the handler first
// reads the body.
func (w *h2sWriter) sendContinue() {
	st := w.st
	sc := st.sc
	if st.dead.Load() || w.hdrSent.Load() {
		return
	}
	frame := sc.frameSize()
	sc.write(func() error {
		if w.hdrSent.Load() {
			return nil
		}
		blk := sc.encode(http.StatusContinue, nil, "", "", "", nil)
		return sc.writeBlock(st.id, blk, false, frame)
	})
}

// send writes what the handler has produced: the HEADERS when not sent
// yet, the buffered body, and with end the trailers and END_STREAM. What
// the flow-control windows allow now leaves in one socket write with
// the HEADERS; the rest waits for WINDOW_UPDATEs.
func (w *h2sWriter) send(end bool) error {
	st := w.st
	sc := st.sc
	if w.ended {
		return errH2StreamClosed
	}
	if !w.wroteHeader {
		w.wroteHeader, w.status = true, http.StatusOK
	}
	if st.dead.Load() {
		w.ended = true
		return errH2StreamClosed
	}
	hdrs := !w.hdrSent.Load()
	data := w.buf
	var trailers http.Header
	if end {
		trailers = w.trailers()
	}
	hasTr := len(trailers) > 0
	var clen, ctype, date string
	goAway := false
	hdrEnd := false
	if hdrs {
		h := w.h
		if v, ok := h["Content-Length"]; ok {
			if len(v) > 0 {
				if _, err := strconv.ParseUint(v[0], 10, 63); err == nil {
					clen = v[0]
				}
			}
		} else if end && h2sBodyAllowed(w.status) && (len(data) > 0 || !w.head) {
			clen = strconv.Itoa(len(data))
		}
		if _, ok := h["Content-Type"]; !ok && h2sBodyAllowed(w.status) && len(data) > 0 && h.Get("Content-Encoding") == "" {
			ctype = http.DetectContentType(data)
		}
		if _, ok := h["Date"]; !ok {
			date = h2sDate()
		}
		if v, ok := h["Connection"]; ok {
			// Not an HTTP/2 field; "close" drains the connection, as
			// x/net does (the manager's drain sets it, see respWriter).
			goAway = len(v) > 0 && v[0] == "close"
			delete(h, "Connection")
		}
		hdrEnd = (end && !hasTr && len(data) == 0) || w.head
	}
	frame := sc.frameSize()
	n := 0
	if len(data) > 0 && !hdrEnd {
		var err error
		if n, err = sc.reserve(st, len(data), false); err != nil {
			w.ended = true
			return err
		}
	}
	first, rest := data[:n], data[n:]
	last := end && len(rest) == 0
	err := sc.write(func() error {
		if st.dead.Load() {
			return errH2StreamClosed
		}
		if st.inline && end && (hdrEnd || last) {
			sc.hold = true // the read loop sends it before its next wait (h2inline.go)
		}
		if hdrs {
			blk := sc.encode(w.status, w.h, clen, ctype, date, nil)
			w.hdrSent.Store(true)
			if err := sc.writeBlock(st.id, blk, hdrEnd, frame); err != nil || hdrEnd {
				return err
			}
		}
		return sc.writeData(st.id, first, last, hasTr, trailers, frame)
	})
	for err == nil && len(rest) > 0 {
		if n, err = sc.reserve(st, len(rest), true); err != nil {
			break
		}
		first, rest = rest[:n], rest[n:]
		last = end && len(rest) == 0
		err = sc.write(func() error {
			if st.dead.Load() {
				return errH2StreamClosed
			}
			if last && st.inline {
				sc.hold = true
			}
			return sc.writeData(st.id, first, last, hasTr, trailers, frame)
		})
	}
	w.buf = w.buf[:0]
	if end || hdrEnd || err != nil {
		w.ended = true
	}
	if goAway {
		sc.goAway()
	}
	return err
}

// writeData writes DATA frames of at most frame bytes; with last, the
// trailers or END_STREAM follow. Called under wmu.
func (sc *h2sConn) writeData(id uint32, p []byte, last, hasTr bool, tr http.Header, frame int) error {
	wrote := false
	for len(p) > 0 {
		c := p[:min(frame, len(p))]
		p = p[len(c):]
		if err := sc.wfr.WriteData(id, last && !hasTr && len(p) == 0, c); err != nil {
			return err
		}
		wrote = true
	}
	switch {
	case !last:
		return nil
	case hasTr:
		return sc.writeBlock(id, sc.encode(0, nil, "", "", "", tr), true, frame)
	case !wrote:
		return sc.wfr.WriteData(id, true, nil) // the body was empty, or flushed before
	}
	return nil
}

// writeBlock writes a header block as HEADERS and CONTINUATION frames.
// Called under wmu.
func (sc *h2sConn) writeBlock(id uint32, blk []byte, end bool, frame int) error {
	first := blk[:min(frame, len(blk))]
	rest := blk[len(first):]
	if err := sc.wfr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: first,
		EndStream: end, EndHeaders: len(rest) == 0}); err != nil {
		return err
	}
	for len(rest) > 0 {
		c := rest[:min(frame, len(rest))]
		rest = rest[len(c):]
		if err := sc.wfr.WriteContinuation(id, len(rest) == 0, c); err != nil {
			return err
		}
	}
	return nil
}

// encode HPACK-encodes a response header block (status > 0) or a
// trailer block (tr). The result is valid until the next encode. Called
// under wmu: the encoder's table follows the order blocks are written.
func (sc *h2sConn) encode(status int, h http.Header, clen, ctype, date string, tr http.Header) []byte {
	if sc.encChange.Swap(false) {
		sc.henc.SetMaxDynamicTableSizeLimit(sc.encTable.Load())
	}
	sc.hbuf.Reset()
	e := sc.henc
	if status > 0 {
		e.WriteField(hpack.HeaderField{Name: ":status", Value: h2sStatus(status)})
	}
	var declared []string
	if h != nil {
		declared = h["Trailer"]
	}
	for k, vs := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) || h2sConnHeader(k) || k == "Content-Length" {
			continue
		}
		if len(declared) > 0 && h2sDeclared(declared, k) {
			continue // a trailer's value, set after WriteHeader
		}
		name := sc.lower(k)
		if !httpguts.ValidHeaderFieldName(name) {
			continue
		}
		te := name == "transfer-encoding"
		for _, v := range vs {
			if !httpguts.ValidHeaderFieldValue(v) || (te && v != "trailers") {
				continue
			}
			e.WriteField(hpack.HeaderField{Name: name, Value: v})
		}
	}
	for k, vs := range tr {
		name := sc.lower(k)
		for _, v := range vs {
			if httpguts.ValidHeaderFieldValue(v) {
				e.WriteField(hpack.HeaderField{Name: name, Value: v})
			}
		}
	}
	if ctype != "" {
		e.WriteField(hpack.HeaderField{Name: "content-type", Value: ctype})
	}
	if clen != "" {
		e.WriteField(hpack.HeaderField{Name: "content-length", Value: clen})
	}
	if date != "" {
		e.WriteField(hpack.HeaderField{Name: "date", Value: date})
	}
	return sc.hbuf.Bytes()
}

// trailers collects the response's trailers at the handler's end:
// values of keys declared in "Trailer", and keys with
// http.TrailerPrefix.
func (w *h2sWriter) trailers() http.Header {
	var tr http.Header
	add := func(k string, vs []string) {
		k = http.CanonicalHeaderKey(k)
		if !httpguts.ValidTrailerHeader(k) || len(vs) == 0 {
			return
		}
		if tr == nil {
			tr = http.Header{}
		}
		tr[k] = vs
	}
	for _, v := range w.h["Trailer"] {
		for _, k := range strings.Split(v, ",") {
			k = strings.TrimSpace(k)
			if vs, ok := w.h[http.CanonicalHeaderKey(k)]; ok {
				add(k, vs)
			}
		}
	}
	for k, vs := range w.h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			add(k[len(http.TrailerPrefix):], vs)
		}
	}
	return tr
}

func h2sDeclared(declared []string, k string) bool {
	for _, v := range declared {
		for _, d := range strings.Split(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(d)) == k {
				return true
			}
		}
	}
	return false
}

// h2sConnHeader: connection-specific fields never sent in HTTP/2.
func h2sConnHeader(k string) bool {
	switch k {
	case "Connection", "Keep-Alive", "Proxy-Connection", "Upgrade":
		return true
	}
	return false
}

// lower lowercases a header name, remembering the common ones. Called
// under wmu.
func (sc *h2sConn) lower(k string) string {
	if v, ok := sc.lowerKeys[k]; ok {
		return v
	}
	v := strings.ToLower(k)
	if len(sc.lowerKeys) < 128 {
		sc.lowerKeys[k] = v
	}
	return v
}

// frameSize is the peer's SETTINGS_MAX_FRAME_SIZE.
func (sc *h2sConn) frameSize() int {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return int(sc.peerFrame)
}

// reserve takes up to want bytes of send window for st; with block it
// waits until some is available.
func (sc *h2sConn) reserve(st *h2sStream, want int, block bool) (int, error) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	for {
		if sc.closed || st.removed || st.dead.Load() {
			return 0, errH2StreamClosed
		}
		n := min(int64(want), st.sendWin, sc.sendConn)
		if n > 0 {
			st.sendWin -= n
			sc.sendConn -= n
			return int(n), nil
		}
		if !block {
			return 0, nil
		}
		if st.inline {
			sc.takeOver() // the WINDOW_UPDATE must be read (h2inline.go)
		}
		sc.cond.Wait()
	}
}

func h2sBodyAllowed(status int) bool {
	return !(status >= 100 && status <= 199) && status != http.StatusNoContent && status != http.StatusNotModified
}

var h2sStatuses = func() (s [600]string) {
	for i := 100; i < len(s); i++ {
		s[i] = strconv.Itoa(i)
	}
	return
}()

func h2sStatus(code int) string {
	if code < len(h2sStatuses) {
		return h2sStatuses[code]
	}
	return strconv.Itoa(code)
}

// h2sDate is the Date header value, formatted once a second.
func h2sDate() string {
	now := time.Now().Unix()
	if d := h2sDateCache.Load(); d != nil && d.sec == now {
		return d.s
	}
	d := &h2sDateVal{sec: now, s: time.Unix(now, 0).UTC().Format(http.TimeFormat)}
	h2sDateCache.Store(d)
	return d.s
}

type h2sDateVal struct {
	sec int64
	s   string
}

var h2sDateCache atomic.Pointer[h2sDateVal]
