package hcm

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Weft's own HTTP/2 server (Options.OwnHTTP2), on x/net's Framer and
// HPACK. x/net's server moves every stream through about a dozen
// goroutine hand-offs (read loop, serve loop, handler, one per HEADERS
// and DATA write, flushes); here one goroutine per connection reads
// frames and answers control frames, each stream's handler runs in its
// own goroutine and writes its frames itself under a per-connection
// lock, HEADERS, DATA and trailers of a response in one socket write.
// The limits follow x/net's (see h2limits_test.go): at most
// max_concurrent_streams open streams and running handlers, streams
// beyond it queued up to four times that (Rapid Reset, CVE-2023-44487),
// header blocks bounded by the framer (CONTINUATION flood,
// CVE-2023-45288), and control frames queued for a client that does not
// read bounded (SETTINGS and PING floods).

const (
	h2sInitialWindow = 65535
	h2sMaxReadFrame  = 1 << 20 // our SETTINGS_MAX_FRAME_SIZE, as x/net's
	h2sDefaultUpload = 1 << 20 // x/net's default stream and connection windows
	h2sMaxCtrlFrames = 10000   // queued control frames before the connection ends, as x/net
	h2sMinRefresh    = 4 << 10 // smallest WINDOW_UPDATE sent while much window is left
	h2sGoAwayLinger  = time.Second
	h2sEncoderTable  = 4096
	h2sKeepOut       = 20 << 10 // the largest write buffer a connection keeps: a default-size DATA frame and headers
)

var (
	errH2StreamClosed = errors.New("http2: stream closed")
	errH2ConnClosed   = errors.New("http2: connection closed")
	errH2ClientReset  = errors.New("http2: stream reset by the client")
)

// h2sConn is one downstream HTTP/2 connection.
type h2sConn struct {
	m      *Manager
	cc     *conn
	ctx    context.Context // carries the conn (connFrom); cancelled when it ends
	cancel context.CancelFunc
	fr     *http2.Framer // the read loop's
	rd     io.Reader     // what fr reads
	wr     io.Writer     // the socket, what frames are written to (socketWriter)
	remote string
	tls    *tls.ConnectionState

	maxStreams uint32
	streamWin  int32 // our initial stream receive window
	connWin    int32 // our connection receive window
	maxHdrList uint32

	// Write side: frames are assembled in out under wmu and leave in one
	// write. The read loop queues control frames in ctrl instead of
	// waiting for a writer (see queueCtrl).
	wmu       sync.Mutex
	out       h2sBuf
	wfr       *http2.Framer // writes into out
	henc      *hpack.Encoder
	hbuf      bytes.Buffer
	werr      error
	wfailed   atomic.Bool   // werr is set (read without wmu)
	encTable  atomic.Uint32 // the peer's SETTINGS_HEADER_TABLE_SIZE, applied by the next encode
	encChange atomic.Bool
	lowerKeys map[string]string // response header names, lowercased (under wmu)

	ctrlMu      sync.Mutex
	ctrl        h2sBuf
	ctrlFr      *http2.Framer // writes into ctrl
	ctrlN       int
	ctrlPending atomic.Bool
	flushing    atomic.Bool // a flusher goroutine runs

	mu        sync.Mutex
	cond      sync.Cond // send windows grew, or a stream or the connection ended
	streams   map[uint32]*h2sStream
	sendConn  int64  // connection send window
	peerWin   int32  // the peer's SETTINGS_INITIAL_WINDOW_SIZE
	peerFrame uint32 // the peer's SETTINGS_MAX_FRAME_SIZE
	recvConn  int64  // connection receive window left
	unsent    int64  // connection receive window consumed, not yet credited
	handlers  int    // running handler goroutines
	// idleWorkers: handler goroutines waiting on work for the next
	// stream (at most one); the read loop closes work when it ends.
	idleWorkers int
	work        chan *h2sStream
	queue       []*h2sStream
	goingAway   bool
	closed      bool
	concurrent  bool // two streams were open at once (h2inline.go)
	unacked     int  // our SETTINGS not yet acknowledged
	idleTimer   *time.Timer
	lingering   bool

	done chan struct{} // closed when the connection ended (end)
	inl  h2sInline
	held atomic.Bool // out holds a response the read loop writes (h2inline.go)
	hold bool        // the next sendLocked may hold out (under wmu)

	maxID    atomic.Uint32 // highest client stream id seen
	lastRead atomic.Int64  // unix nanos of the last frame read (keepalive)
	pingSent atomic.Bool
}

// h2sBuf collects frames (a Framer's writer).
type h2sBuf []byte

func (b *h2sBuf) Write(p []byte) (int, error) {
	*b = append(*b, p...)
	return len(p), nil
}

// serveOwnH2 serves cc with weft's own HTTP/2 server. The client's
// preface may already be buffered (sniffed).
//
//go:noinline
func (m *Manager) serveOwnH2(cc *conn) {
	sc := m.newH2sConn(cc)
	m.ownAdd(sc)
	if sc.serve() {
		sc.end()
		return
	}
	<-sc.done // another goroutine reads the connection now (h2inline.go) and ends it
}

// end ends the connection once its read loop has returned.
func (sc *h2sConn) end() {
	sc.m.ownDel(sc)
	sc.shutdown()
	sc.cc.Close()
	close(sc.done)
}

func (m *Manager) newH2sConn(cc *conn) *h2sConn {
	sc := &h2sConn{m: m, cc: cc, streams: map[uint32]*h2sStream{}, work: make(chan *h2sStream), done: make(chan struct{}),
		sendConn: h2sInitialWindow, peerWin: h2sInitialWindow, peerFrame: 16 << 10,
		maxStreams: m.h2.MaxConcurrentStreams, streamWin: m.h2.MaxUploadBufferPerStream,
		connWin: m.h2.MaxUploadBufferPerConnection}
	sc.cond.L = &sc.mu
	if sc.streamWin <= 0 {
		sc.streamWin = h2sDefaultUpload
	}
	if sc.connWin <= 0 {
		sc.connWin = h2sDefaultUpload
	}
	if sc.connWin < h2sInitialWindow {
		sc.connWin = h2sInitialWindow
	}
	sc.recvConn = int64(sc.connWin)
	sc.ctx, sc.cancel = context.WithCancel(context.WithValue(context.Background(), connKey{}, cc))
	if a := cc.RemoteAddr(); a != nil {
		sc.remote = a.String()
	}
	if tc, ok := cc.Conn.(*tls.Conn); ok {
		st := tc.ConnectionState()
		sc.tls = &st
	} else if cc.info.TLS != nil {
		sc.tls = cc.info.TLS
	}
	// The same header list limit as x/net's: the HTTP/1 limit plus room
	// for HPACK's per-field overhead.
	n := m.h1.MaxHeaderBytes
	if n <= 0 {
		n = 1 << 20
	}
	sc.maxHdrList = uint32(n + 4096 + 10*32)
	// Reads: the batched plain-TCP reader x/net's server uses (h2Conn),
	// without its write-side hint, which only x/net's writes need.
	sc.rd = h2Conn(cc)
	cc.h2 = nil
	sc.wr = socketWriter(cc, sc.rd)
	sc.fr = http2.NewFramer(nil, sc.rd)
	sc.fr.SetMaxReadFrameSize(h2sMaxReadFrame)
	tbl := m.h2.MaxDecoderHeaderTableSize
	if tbl == 0 {
		tbl = 4096
	}
	sc.fr.ReadMetaHeaders = hpack.NewDecoder(tbl, nil)
	sc.fr.MaxHeaderListSize = sc.maxHdrList
	sc.fr.SetReuseFrames()
	sc.wfr = http2.NewFramer(&sc.out, nil)
	sc.ctrlFr = http2.NewFramer(&sc.ctrl, nil)
	sc.henc = hpack.NewEncoder(&sc.hbuf)
	sc.lowerKeys = map[string]string{}
	sc.initInline()
	return sc
}

// serve reads the preface, then runs the read loop until the connection
// ends (true) or another goroutine took the loop over (false, see
// h2inline.go).
func (sc *h2sConn) serve() bool {
	m := sc.m
	if d := m.h1.ReadHeaderTimeout; d > 0 {
		// The preface and the client's SETTINGS arrive within the request
		// headers timeout (slowloris), as x/net's TLS handshake deadline.
		sc.cc.SetReadDeadline(time.Now().Add(d))
	}
	var pre [len(http2.ClientPreface)]byte
	if _, err := io.ReadFull(sc.rd, pre[:]); err != nil || string(pre[:]) != http2.ClientPreface {
		return true
	}
	settings := []http2.Setting{
		{ID: http2.SettingMaxFrameSize, Val: h2sMaxReadFrame},
		{ID: http2.SettingMaxConcurrentStreams, Val: sc.maxStreams},
		{ID: http2.SettingMaxHeaderListSize, Val: sc.maxHdrList},
		{ID: http2.SettingHeaderTableSize, Val: max(m.h2.MaxDecoderHeaderTableSize, 0)},
		{ID: http2.SettingInitialWindowSize, Val: uint32(sc.streamWin)},
	}
	if settings[3].Val == 0 {
		settings = append(settings[:3], settings[4])
	}
	sc.unacked = 1
	sc.queueCtrl(func(fr *http2.Framer) error {
		if err := fr.WriteSettings(settings...); err != nil {
			return err
		}
		if d := sc.connWin - h2sInitialWindow; d > 0 {
			return fr.WriteWindowUpdate(0, uint32(d))
		}
		return nil
	})
	sc.armIdle()
	sc.startKeepalive()
	return sc.loop(true)
}

// loop reads and handles frames: true when the connection ended, false
// when this goroutine ran a stream's handler inline and another took
// over reading meanwhile. first: the next frame is the client's first.
func (sc *h2sConn) loop(first bool) bool {
	m := sc.m
	for {
		f, err := sc.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			if errors.As(err, &se) {
				sc.streamError(se.StreamID, se.Code)
				first = false
				continue
			}
			var ce http2.ConnectionError
			if errors.As(err, &ce) {
				sc.fatal(http2.ErrCode(ce))
			} else if errors.Is(err, http2.ErrFrameTooLarge) {
				sc.fatal(http2.ErrCodeFrameSize)
			}
			return true
		}
		sc.lastRead.Store(time.Now().UnixNano())
		if first {
			// RFC 9113 3.4: the preface ends with a SETTINGS frame.
			if sf, ok := f.(*http2.SettingsFrame); !ok || sf.IsAck() {
				sc.fatal(http2.ErrCodeProtocol)
				return true
			}
			first = false
			if m.h1.ReadHeaderTimeout > 0 {
				sc.cc.SetReadDeadline(time.Time{})
			}
		}
		var code http2.ErrCode
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			var inline *h2sStream
			if code, inline = sc.onHeaders(f); inline != nil && !sc.runInline(inline) {
				return false
			}
		case *http2.DataFrame:
			code = sc.onData(f)
		case *http2.SettingsFrame:
			code = sc.onSettings(f)
		case *http2.PingFrame:
			if f.StreamID != 0 {
				code = http2.ErrCodeProtocol
			} else if f.IsAck() {
				sc.pingSent.Store(false)
			} else {
				data := f.Data
				sc.queueCtrl(func(fr *http2.Framer) error { return fr.WritePing(true, data) })
			}
		case *http2.WindowUpdateFrame:
			code = sc.onWindowUpdate(f)
		case *http2.RSTStreamFrame:
			code = sc.onReset(f)
		case *http2.GoAwayFrame:
			sc.onGoAway()
		case *http2.PushPromiseFrame:
			code = http2.ErrCodeProtocol // clients cannot push
		case *http2.PriorityFrame:
			if f.StreamDep == f.StreamID {
				sc.streamError(f.StreamID, http2.ErrCodeProtocol)
			}
		}
		if code != http2.ErrCodeNo {
			sc.fatal(code)
			return true
		}
		if sc.wfailed.Load() {
			return true
		}
	}
}

// fatal ends the connection with a GOAWAY carrying code.
func (sc *h2sConn) fatal(code http2.ErrCode) {
	last := sc.maxID.Load()
	sc.mu.Lock()
	sc.goingAway = true
	sc.mu.Unlock()
	sc.queueCtrl(func(fr *http2.Framer) error { return fr.WriteGoAway(last, code, nil) })
}

// goAway starts a graceful drain: GOAWAY with the last stream accepted;
// open streams finish, then the connection closes.
func (sc *h2sConn) goAway() {
	sc.mu.Lock()
	if sc.goingAway || sc.closed {
		sc.mu.Unlock()
		return
	}
	sc.goingAway = true
	sc.mu.Unlock()
	last := sc.maxID.Load()
	sc.queueCtrl(func(fr *http2.Framer) error { return fr.WriteGoAway(last, http2.ErrCodeNo, nil) })
	sc.mu.Lock()
	sc.maybeLinger()
	sc.mu.Unlock()
}

// maybeLinger closes a draining connection once its streams ended,
// after a grace period for the client to read the last responses
// (closing at once could reset them). Called with mu held.
func (sc *h2sConn) maybeLinger() {
	if sc.goingAway && !sc.lingering && len(sc.streams) == 0 && sc.handlers == 0 {
		sc.lingering = true
		time.AfterFunc(h2sGoAwayLinger, func() { sc.cc.Close() })
	}
}

// onGoAway: the client will open no more streams; the connection ends
// when the open ones have.
func (sc *h2sConn) onGoAway() {
	sc.mu.Lock()
	sc.goingAway = true
	sc.maybeLinger()
	sc.mu.Unlock()
}

// shutdown ends every stream when the read loop has returned.
func (sc *h2sConn) shutdown() {
	sc.mu.Lock()
	sc.closed = true
	streams := make([]*h2sStream, 0, len(sc.streams)+len(sc.queue))
	for _, st := range sc.streams {
		streams = append(streams, st)
	}
	streams = append(streams, sc.queue...)
	sc.queue = nil
	if sc.idleTimer != nil {
		sc.idleTimer.Stop()
	}
	sc.cond.Broadcast()
	sc.mu.Unlock()
	close(sc.work) // only the read loop sends on it
	for _, st := range streams {
		st.abort(errH2ConnClosed)
	}
	sc.cancel()
	// Flush what is queued (a GOAWAY), then close; a client that does
	// not read gets a second.
	sc.cc.SetWriteDeadline(time.Now().Add(time.Second))
	sc.write(nil)
}

// armIdle starts the idle timeout when no stream is open. Called
// without mu.
func (sc *h2sConn) armIdle() {
	d := sc.m.h2.IdleTimeout
	if d <= 0 {
		return
	}
	sc.mu.Lock()
	defer sc.mu.Unlock()
	sc.armIdleLocked()
}

func (sc *h2sConn) armIdleLocked() {
	d := sc.m.h2.IdleTimeout
	if d <= 0 || sc.closed || len(sc.streams) > 0 || sc.handlers > 0 {
		return
	}
	if sc.idleTimer == nil {
		sc.idleTimer = time.AfterFunc(d, sc.onIdle)
	} else {
		sc.idleTimer.Reset(d)
	}
}

func (sc *h2sConn) onIdle() {
	sc.mu.Lock()
	idle := len(sc.streams) == 0 && sc.handlers == 0
	sc.mu.Unlock()
	if idle {
		sc.goAway()
	}
}

// startKeepalive pings a connection that was silent for
// connection_keepalive.interval and closes it when no answer comes
// within its timeout (x/net's ReadIdleTimeout and PingTimeout).
func (sc *h2sConn) startKeepalive() {
	every := sc.m.h2.ReadIdleTimeout
	if every <= 0 {
		return
	}
	wait := sc.m.h2.PingTimeout
	if wait <= 0 {
		wait = 15 * time.Second
	}
	sc.lastRead.Store(time.Now().UnixNano())
	var t *time.Timer
	t = time.AfterFunc(every, func() {
		sc.mu.Lock()
		closed := sc.closed
		sc.mu.Unlock()
		if closed {
			return
		}
		idle := time.Since(time.Unix(0, sc.lastRead.Load()))
		if idle < every {
			t.Reset(every - idle)
			return
		}
		if sc.pingSent.Load() {
			sc.cc.Close() // the last ping went unanswered
			return
		}
		sc.pingSent.Store(true)
		sc.queueCtrl(func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{'w', 'e', 'f', 't'}) })
		t.Reset(wait)
	})
}

// onSettings applies the client's settings and acknowledges them.
func (sc *h2sConn) onSettings(f *http2.SettingsFrame) http2.ErrCode {
	if f.IsAck() {
		sc.mu.Lock()
		if sc.unacked > 0 {
			sc.unacked--
		}
		sc.mu.Unlock()
		return http2.ErrCodeNo
	}
	if err := f.ForeachSetting(func(s http2.Setting) error { return s.Valid() }); err != nil {
		var ce http2.ConnectionError
		if errors.As(err, &ce) {
			return http2.ErrCode(ce)
		}
		return http2.ErrCodeProtocol
	}
	code := http2.ErrCodeNo
	f.ForeachSetting(func(s http2.Setting) error {
		switch s.ID {
		case http2.SettingInitialWindowSize:
			sc.mu.Lock()
			delta := int64(s.Val) - int64(sc.peerWin)
			sc.peerWin = int32(s.Val)
			for _, st := range sc.streams {
				st.sendWin += delta
				if st.sendWin > 1<<31-1 {
					code = http2.ErrCodeFlowControl
				}
			}
			sc.cond.Broadcast()
			sc.mu.Unlock()
		case http2.SettingMaxFrameSize:
			sc.mu.Lock()
			sc.peerFrame = s.Val
			sc.mu.Unlock()
		case http2.SettingHeaderTableSize:
			sc.encTable.Store(min(s.Val, h2sEncoderTable))
			sc.encChange.Store(true)
		}
		return nil
	})
	if code != http2.ErrCodeNo {
		return code
	}
	sc.queueCtrl(func(fr *http2.Framer) error { return fr.WriteSettingsAck() })
	return http2.ErrCodeNo
}

// onWindowUpdate grows a send window.
func (sc *h2sConn) onWindowUpdate(f *http2.WindowUpdateFrame) http2.ErrCode {
	if f.StreamID != 0 && f.StreamID > sc.maxID.Load() {
		return http2.ErrCodeProtocol // an idle stream (RFC 9113 5.1)
	}
	sc.mu.Lock()
	if f.StreamID == 0 {
		sc.sendConn += int64(f.Increment)
		over := sc.sendConn > 1<<31-1
		sc.cond.Broadcast()
		sc.mu.Unlock()
		if over {
			return http2.ErrCodeFlowControl
		}
		return http2.ErrCodeNo
	}
	over := false
	if st := sc.streams[f.StreamID]; st != nil { // a closed stream's are ignored
		st.sendWin += int64(f.Increment)
		over = st.sendWin > 1<<31-1
		sc.cond.Broadcast()
	}
	sc.mu.Unlock()
	if over {
		sc.streamError(f.StreamID, http2.ErrCodeFlowControl)
	}
	return http2.ErrCodeNo
}

// onReset: the client cancelled a stream.
func (sc *h2sConn) onReset(f *http2.RSTStreamFrame) http2.ErrCode {
	if f.StreamID > sc.maxID.Load() {
		return http2.ErrCodeProtocol // an idle stream
	}
	sc.mu.Lock()
	st := sc.streams[f.StreamID]
	if st != nil {
		sc.removeLocked(st)
	}
	sc.mu.Unlock()
	if st != nil {
		st.abort(errH2ClientReset)
	}
	return http2.ErrCodeNo
}

// streamError resets a stream (RST_STREAM) and ends it.
func (sc *h2sConn) streamError(id uint32, code http2.ErrCode) {
	sc.mu.Lock()
	st := sc.streams[id]
	if st != nil {
		sc.removeLocked(st)
	}
	sc.mu.Unlock()
	if st != nil {
		st.abort(errH2StreamClosed)
	}
	sc.queueCtrl(func(fr *http2.Framer) error { return fr.WriteRSTStream(id, code) })
}

// removeLocked forgets a stream: it no longer counts against
// max_concurrent_streams, and its unread request bytes are credited back
// to the connection window. Called with mu held.
func (sc *h2sConn) removeLocked(st *h2sStream) {
	if sc.streams[st.id] != st {
		return
	}
	delete(sc.streams, st.id)
	st.removed = true
	sc.cond.Broadcast()
	if st.body != nil {
		sc.unsent += st.body.drop()
	}
	sc.maybeLinger()
	sc.armIdleLocked()
}

// queueCtrl queues control frames written by fn; a writer sends them
// with its next frames, else a flusher goroutine now. The read loop
// never writes to the socket itself: a client that does not read would
// stop it, and its control frames pile up in the queue instead, which
// ends the connection past h2sMaxCtrlFrames (as x/net).
func (sc *h2sConn) queueCtrl(fn func(*http2.Framer) error) {
	if sc.enqueue(fn) && sc.flushing.CompareAndSwap(false, true) {
		go sc.flusher()
	}
}

// queueCtrlInline is queueCtrl for handler goroutines: they send the
// frames themselves unless a writer holds the lock.
func (sc *h2sConn) queueCtrlInline(fn func(*http2.Framer) error) {
	if sc.enqueue(fn) {
		sc.flushCtrl()
	}
}

func (sc *h2sConn) enqueue(fn func(*http2.Framer) error) bool {
	sc.ctrlMu.Lock()
	sc.ctrlN++
	over := sc.ctrlN > h2sMaxCtrlFrames
	if !over {
		fn(sc.ctrlFr)
	}
	sc.ctrlPending.Store(true)
	sc.ctrlMu.Unlock()
	if over {
		sc.cc.Close()
	}
	return !over
}

func (sc *h2sConn) flusher() {
	for {
		sc.wmu.Lock()
		sc.sendLocked()
		sc.wmu.Unlock()
		sc.flushing.Store(false)
		if !sc.ctrlPending.Load() || !sc.flushing.CompareAndSwap(false, true) {
			return
		}
	}
}

// flushCtrl sends queued control frames unless a writer holds the lock;
// that writer sends them before it lets go (see write).
func (sc *h2sConn) flushCtrl() {
	for sc.ctrlPending.Load() && sc.wmu.TryLock() {
		sc.sendLocked()
		sc.wmu.Unlock()
	}
}

// takeCtrl moves queued control frames to the front of out. Called
// with wmu held.
func (sc *h2sConn) takeCtrl() {
	if !sc.ctrlPending.Load() {
		return
	}
	sc.ctrlMu.Lock()
	sc.out = append(sc.out, sc.ctrl...)
	sc.ctrl = sc.ctrl[:0]
	sc.ctrlN = 0
	sc.ctrlPending.Store(false)
	sc.ctrlMu.Unlock()
}

// sendLocked writes out (with queued control frames) to the socket.
// Called with wmu held.
func (sc *h2sConn) sendLocked() {
	hold := sc.hold
	sc.hold = false
	sc.takeCtrl()
	if len(sc.out) == 0 {
		return
	}
	if hold {
		if sc.werr == nil && len(sc.out) <= h2sKeepOut && sc.inlineActive() {
			sc.held.Store(true) // written by the read loop's next read (h2inline.go)
			return
		}
	}
	sc.held.Store(false)
	if sc.werr == nil {
		if _, err := sc.wr.Write(sc.out); err != nil {
			sc.werr = err
			sc.wfailed.Store(true)
			sc.cc.Close()
		}
	}
	if cap(sc.out) > h2sKeepOut {
		sc.out = nil // an idle connection keeps no large buffer
	} else {
		sc.out = sc.out[:0]
	}
}

// write runs fn under the write lock to append frames to out, then
// sends them with any queued control frames in one write.
func (sc *h2sConn) write(fn func() error) error {
	sc.wmu.Lock()
	err := sc.werr
	if err == nil && fn != nil {
		sc.takeCtrl()
		err = fn()
	}
	sc.sendLocked()
	if err == nil {
		err = sc.werr
	}
	sc.wmu.Unlock()
	sc.flushCtrl()
	return err
}

// h2sSet is a manager's open connections on the own server, for GOAWAY
// on drain.
type h2sSet struct {
	mu    sync.Mutex
	conns map[*h2sConn]struct{}
}

func (m *Manager) ownAdd(sc *h2sConn) {
	m.own.mu.Lock()
	if m.own.conns == nil {
		m.own.conns = map[*h2sConn]struct{}{}
	}
	m.own.conns[sc] = struct{}{}
	m.own.mu.Unlock()
	if m.closing() {
		sc.goAway() // the drain started while this connection was handed over
	}
}

func (m *Manager) ownDel(sc *h2sConn) {
	m.own.mu.Lock()
	delete(m.own.conns, sc)
	m.own.mu.Unlock()
}

// ownGoAway sends GOAWAY on every open connection of the own server.
func (m *Manager) ownGoAway() {
	m.own.mu.Lock()
	conns := make([]*h2sConn, 0, len(m.own.conns))
	for sc := range m.own.conns {
		conns = append(conns, sc)
	}
	m.own.mu.Unlock()
	for _, sc := range conns {
		sc.goAway()
	}
}
