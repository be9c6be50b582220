package hcm

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// The differential test: the same frame sequences (requests with and
// without bodies, trailers both ways, resets, flow-control stalls,
// oversized and malformed frames, a bad preface) go to a manager served
// by x/net's HTTP/2 server and to one served by the own server; what
// each answers (per stream: statuses, headers, body, trailers, reset
// code; per connection: GOAWAY code, ping answers, whether it closed)
// must be the same.

// h2dOutcome is what a server answered, normalised for comparison.
type h2dOutcome struct {
	Streams map[uint32]*h2dStream
	GoAway  string // GOAWAY error code, "" when none
	Pings   int    // PING acks
	Closed  bool   // the server closed the connection
}

type h2dStream struct {
	Statuses []string
	Header   map[string]string
	Body     string
	Trailer  map[string]string
	Reset    string
	Ended    bool
}

func (s *h2dStream) done() bool { return s.Ended || s.Reset != "" }

// h2dPeer is a scripted HTTP/2 client. Its reader records the answers
// and checks the server never sends more DATA than the windows allow.
type h2dPeer struct {
	t       *testing.T
	c       net.Conn
	wmu     sync.Mutex
	fr      *http2.Framer
	enc     *hpack.Encoder
	hbuf    bytes.Buffer
	mu      sync.Mutex
	changed chan struct{}
	out     h2dOutcome
	settled bool // the server's SETTINGS arrived and were acknowledged
	// Send windows the client granted (flow-control check).
	connWin   int64
	streamWin map[uint32]int64
	initWin   int64
	autoWin   bool // send WINDOW_UPDATEs as DATA arrives
	violation string
}

func dialH2d(t *testing.T, addr string, preface string, settings []http2.Setting, autoWin bool) *h2dPeer {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	p := &h2dPeer{t: t, c: c, fr: http2.NewFramer(c, nil), changed: make(chan struct{}, 1),
		out: h2dOutcome{Streams: map[uint32]*h2dStream{}}, connWin: 65535, initWin: 65535,
		streamWin: map[uint32]int64{}, autoWin: autoWin}
	p.enc = hpack.NewEncoder(&p.hbuf)
	for _, s := range settings {
		if s.ID == http2.SettingInitialWindowSize {
			p.initWin = int64(s.Val)
		}
	}
	c.Write([]byte(preface))
	if preface == http2.ClientPreface {
		p.fr.WriteSettings(settings...)
	}
	go p.read()
	return p
}

func (p *h2dPeer) read() {
	rd := http2.NewFramer(nil, p.c)
	rd.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	rd.SetMaxReadFrameSize(1 << 24)
	defer func() {
		p.mu.Lock()
		p.out.Closed = true
		p.mu.Unlock()
		p.poke()
	}()
	for {
		f, err := rd.ReadFrame()
		if err != nil {
			return
		}
		p.mu.Lock()
		st := func(id uint32) *h2dStream {
			s := p.out.Streams[id]
			if s == nil {
				s = &h2dStream{Header: map[string]string{}, Trailer: map[string]string{}}
				p.out.Streams[id] = s
			}
			return s
		}
		var ack, upd func()
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				ack = func() { p.fr.WriteSettingsAck() }
			}
		case *http2.MetaHeadersFrame:
			s := st(f.StreamID)
			status := f.PseudoValue("status")
			if status == "" || len(s.Statuses) > 0 && !strings.HasPrefix(s.Statuses[len(s.Statuses)-1], "1") {
				for _, hf := range f.RegularFields() {
					s.Trailer[hf.Name] = hf.Value
				}
			} else {
				s.Statuses = append(s.Statuses, status)
				for _, hf := range f.RegularFields() {
					switch hf.Name {
					case "date", "x-envoy-upstream-service-time":
						s.Header[hf.Name] = "*"
					default:
						if s.Header[hf.Name] != "" {
							s.Header[hf.Name] += ","
						}
						s.Header[hf.Name] += hf.Value
					}
				}
			}
			s.Ended = s.Ended || f.StreamEnded()
		case *http2.DataFrame:
			s := st(f.StreamID)
			s.Body += string(f.Data())
			s.Ended = s.Ended || f.StreamEnded()
			n := int64(f.Length)
			w, ok := p.streamWin[f.StreamID]
			if !ok {
				w = p.initWin
			}
			if n > w || n > p.connWin {
				p.violation = fmt.Sprintf("stream %d: DATA of %d with windows %d/%d", f.StreamID, n, w, p.connWin)
			}
			p.streamWin[f.StreamID], p.connWin = w-n, p.connWin-n
			if p.autoWin && n > 0 {
				id := f.StreamID
				p.streamWin[id] += n
				p.connWin += n
				upd = func() { p.fr.WriteWindowUpdate(0, uint32(n)); p.fr.WriteWindowUpdate(id, uint32(n)) }
			}
		case *http2.RSTStreamFrame:
			st(f.StreamID).Reset = f.ErrCode.String()
		case *http2.GoAwayFrame:
			p.out.GoAway = f.ErrCode.String()
		case *http2.PingFrame:
			if f.IsAck() {
				p.out.Pings++
			}
		}
		p.mu.Unlock()
		if ack != nil || upd != nil {
			p.wmu.Lock()
			if ack != nil {
				ack()
				p.mu.Lock()
				p.settled = true
				p.mu.Unlock()
			}
			if upd != nil {
				upd()
			}
			p.wmu.Unlock()
		}
		p.poke()
	}
}

func (p *h2dPeer) poke() {
	select {
	case p.changed <- struct{}{}:
	default:
	}
}

// await waits until cond holds on the outcome (or the deadline).
func (p *h2dPeer) await(what string, cond func(o *h2dOutcome) bool) {
	deadline := time.After(10 * time.Second)
	for {
		p.mu.Lock()
		ok := cond(&p.out)
		p.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-p.changed:
		case <-deadline:
			p.t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func (p *h2dPeer) settle() {
	p.await("the server's SETTINGS", func(*h2dOutcome) bool { return p.settled })
}

func (p *h2dPeer) ended(ids ...uint32) {
	p.await(fmt.Sprintf("streams %v", ids), func(o *h2dOutcome) bool {
		for _, id := range ids {
			if s := o.Streams[id]; s == nil || !s.done() {
				return false
			}
		}
		return true
	})
}

func (p *h2dPeer) closed() {
	p.await("the connection to close", func(o *h2dOutcome) bool { return o.Closed })
}

func (p *h2dPeer) write(fn func(fr *http2.Framer) error) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	fn(p.fr)
}

// windowUpdate grants the server more send window on a stream.
func (p *h2dPeer) windowUpdate(id uint32, n uint32) {
	p.mu.Lock()
	w, ok := p.streamWin[id]
	if !ok {
		w = p.initWin
	}
	p.streamWin[id] = w + int64(n)
	p.mu.Unlock()
	p.write(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(id, n) })
}

// initialWindow changes SETTINGS_INITIAL_WINDOW_SIZE, which moves every
// stream's window by the difference.
func (p *h2dPeer) initialWindow(v uint32) {
	p.mu.Lock()
	d := int64(v) - p.initWin
	p.initWin = int64(v)
	for id := range p.streamWin {
		p.streamWin[id] += d
	}
	p.mu.Unlock()
	p.write(func(fr *http2.Framer) error {
		return fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: v})
	})
}

func (p *h2dPeer) headers(id uint32, end bool, fields ...string) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	p.hbuf.Reset()
	for i := 0; i+1 < len(fields); i += 2 {
		p.enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
	}
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.hbuf.Bytes(), EndStream: end, EndHeaders: true})
}

func (p *h2dPeer) get(id uint32, path string, extra ...string) {
	p.headers(id, true, append([]string{":method", "GET", ":scheme", "http", ":authority", "x", ":path", path}, extra...)...)
}

func (p *h2dPeer) post(id uint32, path string, extra ...string) {
	p.headers(id, false, append([]string{":method", "POST", ":scheme", "http", ":authority", "x", ":path", path}, extra...)...)
}

func (p *h2dPeer) outcome() h2dOutcome {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.violation != "" {
		p.t.Errorf("flow control: %s", p.violation)
	}
	o := p.out
	o.Streams = map[uint32]*h2dStream{}
	for id, s := range p.out.Streams {
		cp := *s
		o.Streams[id] = &cp
	}
	return o
}

func (o h2dOutcome) String() string {
	var b strings.Builder
	ids := make([]int, 0, len(o.Streams))
	for id := range o.Streams {
		ids = append(ids, int(id))
	}
	sort.Ints(ids)
	for _, id := range ids {
		s := o.Streams[uint32(id)]
		body := s.Body
		if len(body) > 80 {
			body = fmt.Sprintf("%q… (%d bytes)", body[:80], len(body))
		}
		fmt.Fprintf(&b, "  stream %d: statuses %v reset %q ended %v header %v trailer %v body %s\n", id, s.Statuses,
			s.Reset, s.Ended, s.Header, s.Trailer, body)
	}
	fmt.Fprintf(&b, "  goaway %q pings %d closed %v", o.GoAway, o.Pings, o.Closed)
	return b.String()
}

// h2dBackend serves the differential cases.
func h2dBackend(t *testing.T) string {
	big := strings.Repeat("0123456789abcdef", 200<<10/16)
	return backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/get":
			w.Header().Set("X-Kind", "get")
			io.WriteString(w, "hello")
		case "/echo":
			b, _ := io.ReadAll(r.Body)
			w.Header().Set("X-Len", fmt.Sprint(len(b)))
			w.Header().Set("X-Trailer-Seen", r.Trailer.Get("X-Sum"))
			w.Write(b)
		case "/trailers":
			w.Header().Set("Trailer", "Grpc-Status, Grpc-Message")
			w.Header().Set("Content-Type", "application/grpc")
			w.WriteHeader(200)
			w.Write([]byte{0, 0, 0, 0, 1, 'x'})
			w.Header().Set("Grpc-Status", "0")
			w.Header().Set("Grpc-Message", "fine")
		case "/big":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			io.WriteString(w, big)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		case "/empty":
			w.WriteHeader(204)
		default:
			http.NotFound(w, r)
		}
	}))
}

func TestH2ServerDifferential(t *testing.T) {
	be := h2dBackend(t)
	start := func(own bool, mut func(*hcmv3HCM)) string {
		return startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
			routes: rc(vhost(rt("r", "/", toCluster("a")))), mutateHCM: mut, xnetH2: !own,
			opts: Options{OwnHTTP2: own, OnComplete: func(*StreamInfo) {}}}).addr
	}
	h2only := func(h *hcmv3HCM) { h.CodecType = hcmv3.HttpConnectionManager_HTTP2 }
	oneStream := func(h *hcmv3HCM) {
		h.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(1)}
	}
	type tcase struct {
		name     string
		mut      func(*hcmv3HCM)
		preface  string
		settings []http2.Setting
		autoWin  bool
		script   func(p *h2dPeer)
	}
	cases := []tcase{
		{name: "get", script: func(p *h2dPeer) { p.get(1, "/get"); p.ended(1) }},
		{name: "head", script: func(p *h2dPeer) {
			p.headers(1, true, ":method", "HEAD", ":scheme", "http", ":authority", "x", ":path", "/get")
			p.ended(1)
		}},
		{name: "no content", script: func(p *h2dPeer) { p.get(1, "/empty"); p.ended(1) }},
		{name: "not found", script: func(p *h2dPeer) { p.get(1, "/nope"); p.ended(1) }},
		{name: "concurrent gets", script: func(p *h2dPeer) {
			for id := uint32(1); id < 20; id += 2 {
				p.get(id, "/get")
			}
			p.ended(1, 3, 5, 7, 9, 11, 13, 15, 17, 19)
		}},
		{name: "post with body", script: func(p *h2dPeer) {
			p.post(1, "/echo", "content-length", "11")
			p.write(func(fr *http2.Framer) error { return fr.WriteData(1, false, []byte("hello ")) })
			p.write(func(fr *http2.Framer) error { return fr.WriteData(1, true, []byte("world")) })
			p.ended(1)
		}},
		{name: "post padded", script: func(p *h2dPeer) {
			p.post(1, "/echo")
			p.write(func(fr *http2.Framer) error { return fr.WriteDataPadded(1, true, []byte("padded"), make([]byte, 100)) })
			p.ended(1)
		}},
		{name: "post empty", script: func(p *h2dPeer) {
			p.post(1, "/echo")
			p.write(func(fr *http2.Framer) error { return fr.WriteData(1, true, nil) })
			p.ended(1)
		}},
		{name: "request trailers", script: func(p *h2dPeer) {
			p.post(1, "/echo", "trailer", "x-sum")
			p.write(func(fr *http2.Framer) error { return fr.WriteData(1, false, []byte("abc")) })
			p.headers(1, true, "x-sum", "42")
			p.ended(1)
		}},
		{name: "response trailers", script: func(p *h2dPeer) {
			p.post(1, "/trailers", "content-type", "application/grpc", "te", "trailers")
			p.write(func(fr *http2.Framer) error { return fr.WriteData(1, true, []byte{0, 0, 0, 0, 0}) })
			p.ended(1)
		}},
		{name: "expect continue", script: func(p *h2dPeer) {
			p.post(1, "/echo", "expect", "100-continue", "content-length", "2")
			p.await("100 continue", func(o *h2dOutcome) bool {
				s := o.Streams[1]
				return s != nil && len(s.Statuses) > 0
			})
			p.write(func(fr *http2.Framer) error { return fr.WriteData(1, true, []byte("ok")) })
			p.ended(1)
		}},
		{name: "client reset then get", script: func(p *h2dPeer) {
			p.get(1, "/slow")
			p.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(1, http2.ErrCodeCancel) })
			p.get(3, "/get")
			p.ended(3)
		}},
		{name: "flow control stall", settings: []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 1000}},
			autoWin: true, script: func(p *h2dPeer) { p.get(1, "/big"); p.ended(1) }},
		{name: "flow control window update later", settings: []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 0}},
			script: func(p *h2dPeer) {
				p.get(1, "/get")
				p.await("headers", func(o *h2dOutcome) bool { s := o.Streams[1]; return s != nil && len(s.Statuses) > 0 })
				p.windowUpdate(1, 100)
				p.ended(1)
			}},
		{name: "settings window change", settings: []http2.Setting{{ID: http2.SettingInitialWindowSize, Val: 0}},
			script: func(p *h2dPeer) {
				p.get(1, "/get")
				p.await("headers", func(o *h2dOutcome) bool { s := o.Streams[1]; return s != nil && len(s.Statuses) > 0 })
				p.initialWindow(65535)
				p.ended(1)
			}},
		{name: "ping", script: func(p *h2dPeer) {
			p.write(func(fr *http2.Framer) error { return fr.WritePing(false, [8]byte{1, 2, 3}) })
			p.await("ping ack", func(o *h2dOutcome) bool { return o.Pings == 1 })
		}},
		{name: "oversized frame", script: func(p *h2dPeer) {
			// A frame header announcing 2 MiB, past our 1 MiB SETTINGS_MAX_FRAME_SIZE.
			p.write(func(fr *http2.Framer) error {
				_, err := p.c.Write([]byte{0x20, 0, 0, 0x0, 0, 0, 0, 0, 1})
				return err
			})
			p.closed()
		}},
		{name: "data on stream 0", script: func(p *h2dPeer) {
			p.write(func(fr *http2.Framer) error {
				_, err := p.c.Write([]byte{0, 0, 1, 0x0, 0, 0, 0, 0, 0, 'x'})
				return err
			})
			p.closed()
		}},
		{name: "even stream id", script: func(p *h2dPeer) { p.get(2, "/get"); p.closed() }},
		{name: "decreasing stream id", script: func(p *h2dPeer) { p.get(5, "/get"); p.ended(5); p.get(3, "/get"); p.closed() }},
		{name: "missing path", script: func(p *h2dPeer) {
			p.headers(1, true, ":method", "GET", ":scheme", "http", ":authority", "x")
			p.ended(1)
		}},
		{name: "uppercase header", script: func(p *h2dPeer) { p.get(1, "/get", "X-Upper", "v"); p.ended(1) }},
		{name: "connection header", script: func(p *h2dPeer) { p.get(1, "/get", "connection", "keep-alive"); p.ended(1) }},
		{name: "content-length mismatch", script: func(p *h2dPeer) {
			p.post(1, "/echo", "content-length", "10")
			p.write(func(fr *http2.Framer) error { return fr.WriteData(1, true, []byte("abc")) })
			p.ended(1)
		}},
		{name: "window update zero", script: func(p *h2dPeer) {
			p.get(1, "/slow")
			p.write(func(fr *http2.Framer) error { return fr.WriteWindowUpdate(1, 0) })
			p.ended(1)
		}},
		{name: "over max streams", mut: oneStream, script: func(p *h2dPeer) {
			p.get(1, "/slow")
			p.get(3, "/get")
			p.ended(3)
			p.write(func(fr *http2.Framer) error { return fr.WriteRSTStream(1, http2.ErrCodeCancel) })
			p.get(5, "/get")
			p.ended(5)
		}},
		{name: "headers then garbage continuation", script: func(p *h2dPeer) {
			p.write(func(fr *http2.Framer) error { return fr.WriteContinuation(1, true, []byte{0x82}) })
			p.closed()
		}},
		{name: "bad preface", mut: h2only, preface: "PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", script: func(p *h2dPeer) { p.closed() }},
		{name: "first frame not settings", preface: http2.ClientPreface + "\x00\x00\x08\x06\x00\x00\x00\x00\x00\x01\x02\x03\x04\x05\x06\x07\x08",
			script: func(p *h2dPeer) { p.closed() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got [2]h2dOutcome
			for i, own := range []bool{false, true} {
				addr := start(own, tc.mut)
				pre := tc.preface
				if pre == "" {
					pre = http2.ClientPreface
				}
				p := dialH2d(t, addr, pre, tc.settings, tc.autoWin)
				if pre == http2.ClientPreface {
					p.settle()
				}
				tc.script(p)
				got[i] = p.outcome()
			}
			if !reflect.DeepEqual(got[0], got[1]) {
				t.Errorf("x/net:\n%v\nown:\n%v", got[0], got[1])
			}
		})
	}
}
