package hcm

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// h2Peer is a raw HTTP/2 client that crafts frames (attacks) on one
// connection; a goroutine reads and discards what the server sends.
type h2Peer struct {
	c      net.Conn
	mu     sync.Mutex
	fr     *http2.Framer
	enc    *hpack.Encoder
	hbuf   bytes.Buffer
	closed chan struct{} // the server ended the connection
	goAway atomic.Bool
}

func dialH2(t *testing.T, addr string) *h2Peer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	p := &h2Peer{c: c, fr: http2.NewFramer(c, c), closed: make(chan struct{})}
	p.enc = hpack.NewEncoder(&p.hbuf)
	c.Write([]byte(http2.ClientPreface))
	p.fr.WriteSettings()
	rd := http2.NewFramer(io.Discard, c)
	go func() {
		defer close(p.closed)
		for {
			f, err := rd.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.GoAwayFrame:
				p.goAway.Store(true)
			case *http2.SettingsFrame:
				if !f.IsAck() {
					p.mu.Lock()
					p.fr.WriteSettingsAck()
					p.mu.Unlock()
				}
			}
		}
	}()
	return p
}

// block encodes a request header block (extra fields after the pseudo ones).
func (p *h2Peer) block(path string, extra ...hpack.HeaderField) []byte {
	p.hbuf.Reset()
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "x"}, {Name: ":path", Value: path}}, extra...) {
		p.enc.WriteField(f)
	}
	return append([]byte(nil), p.hbuf.Bytes()...)
}

func (p *h2Peer) write(fn func(*http2.Framer) error) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fn(p.fr)
}

// serving runs fn against the proxy every few milliseconds, over HTTP/1.1
// and h2c, until stop; it reports the first failure.
func serving(t *testing.T, addr string, stop <-chan struct{}) (done func() (int, error)) {
	var n atomic.Int64
	var first atomic.Value
	var wg sync.WaitGroup
	for _, c := range []*http.Client{client(), h2cClient()} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				resp, err := c.Get("http://" + addr + "/")
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						err = fmt.Errorf("status %d %q", resp.StatusCode, b)
					}
				}
				if err != nil {
					first.CompareAndSwap(nil, err)
					return
				}
				n.Add(1)
			}
		}()
	}
	return func() (int, error) {
		wg.Wait()
		err, _ := first.Load().(error)
		return int(n.Load()), err
	}
}

// Issue 16 item 2: a Rapid Reset flood (CVE-2023-44487), a CONTINUATION
// flood (CVE-2023-45288) and oversized header blocks against a
// sidecar-like and a gateway-like connection manager leave it serving
// other clients, and what the attacks started ends.
func TestHTTP2Floods(t *testing.T) {
	var slow atomic.Int64
	be := backend(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slow.Add(1)
			select {
			case <-r.Context().Done():
			case <-time.After(2 * time.Second):
			}
		}
		io.WriteString(w, "ok")
	}))
	for _, tc := range []struct {
		name    string
		gateway bool
	}{{"sidecar", false}, {"gateway", true}} {
		t.Run(tc.name, func(t *testing.T) {
			p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
				routes: rc(vhost(rt("r", "/", toCluster("a")))), opts: Options{OnComplete: func(*StreamInfo) {}},
				mutateHCM: func(h *hcmv3HCM) {
					if tc.gateway {
						h.UseRemoteAddress = wrapperspb.Bool(true)
					}
				}})
			want := uint32(SidecarMaxConcurrentStreams)
			if tc.gateway {
				want = GatewayMaxConcurrentStreams
			}
			if got := p.mgr.h2.MaxConcurrentStreams; got != want {
				t.Fatalf("max_concurrent_streams default %d, want %d", got, want)
			}
			g0 := runtime.NumGoroutine()

			t.Run("rapid reset", func(t *testing.T) {
				stop := make(chan struct{})
				done := serving(t, p.addr, stop)
				a := dialH2(t, p.addr)
				blk := a.block("/slow")
				sent := 0
				for id := uint32(1); id < 2*4000; id += 2 {
					err := a.write(func(fr *http2.Framer) error {
						if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: blk,
							EndStream: true, EndHeaders: true}); err != nil {
							return err
						}
						return fr.WriteRSTStream(id, http2.ErrCodeCancel)
					})
					if err != nil {
						break // the server ended the connection: fine
					}
					sent++
				}
				time.Sleep(100 * time.Millisecond)
				close(stop)
				n, err := done()
				if err != nil {
					t.Fatalf("other clients failed during the flood: %v", err)
				}
				t.Logf("%d streams opened and reset; %d other requests served; %d reached the backend", sent, n, slow.Load())
			})

			t.Run("continuation flood", func(t *testing.T) {
				stop := make(chan struct{})
				done := serving(t, p.addr, stop)
				a := dialH2(t, p.addr)
				junk := hpack.HeaderField{Name: "x-junk", Value: strings.Repeat("j", 8000)}
				first := a.block("/", junk)
				var frag bytes.Buffer
				e := hpack.NewEncoder(&frag)
				e.SetMaxDynamicTableSizeLimit(0)
				e.WriteField(junk)
				sentBytes := 0
				err := a.write(func(fr *http2.Framer) error {
					return fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: first, EndHeaders: false})
				})
				for err == nil && sentBytes < 64<<20 {
					err = a.write(func(fr *http2.Framer) error { return fr.WriteContinuation(1, false, frag.Bytes()) })
					sentBytes += frag.Len()
				}
				select {
				case <-a.closed:
				case <-time.After(10 * time.Second):
					t.Fatalf("connection still open after %d bytes of CONTINUATION", sentBytes)
				}
				close(stop)
				n, err := done()
				if err != nil {
					t.Fatalf("other clients failed during the flood: %v", err)
				}
				if sentBytes >= 64<<20 {
					t.Fatalf("the server read 64 MiB of one header block")
				}
				t.Logf("connection ended after %d KiB of CONTINUATION; %d other requests served", sentBytes>>10, n)
			})

			t.Run("oversized headers", func(t *testing.T) {
				stop := make(chan struct{})
				done := serving(t, p.addr, stop)
				a := dialH2(t, p.addr)
				big := a.block("/", hpack.HeaderField{Name: "x-big", Value: strings.Repeat("b", 70<<10)})
				for id := uint32(1); id < 2*200; id += 2 {
					err := a.write(func(fr *http2.Framer) error {
						// Split at the frame size limit, as a client must.
						const max = 16 << 10
						b := big
						end := len(b) <= max
						if err := fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: b[:min(max, len(b))],
							EndStream: true, EndHeaders: end}); err != nil {
							return err
						}
						for b = b[min(max, len(b)):]; len(b) > 0; b = b[min(max, len(b)):] {
							if err := fr.WriteContinuation(id, len(b) <= max, b[:min(max, len(b))]); err != nil {
								return err
							}
						}
						return nil
					})
					if err != nil {
						break
					}
				}
				close(stop)
				n, err := done()
				if err != nil {
					t.Fatalf("other clients failed during the attack: %v", err)
				}
				t.Logf("%d other requests served", n)
			})

			// What the attacks started ends (handlers, upstream requests).
			deadline := time.Now().Add(10 * time.Second)
			for runtime.NumGoroutine() > g0+20 {
				if time.Now().After(deadline) {
					t.Fatalf("goroutines %d, %d before the attacks", runtime.NumGoroutine(), g0)
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// http2_protocol_options from the config are applied; values outside
// Envoy's ranges and options weft-proxy cannot honour are NACKed by name.
func TestHTTP2ProtocolOptions(t *testing.T) {
	base := startProxyConfigForNew(t)
	mk := func(o *corev3.Http2ProtocolOptions) (*Manager, error) {
		cfg := proto.Clone(base).(*hcmv3HCM)
		cfg.Http2ProtocolOptions = o
		return New(cfg, &testEnv{}, Options{})
	}
	m, err := mk(&corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(7),
		InitialStreamWindowSize: wrapperspb.UInt32(70000), InitialConnectionWindowSize: wrapperspb.UInt32(80000),
		HpackTableSize:      wrapperspb.UInt32(0),
		ConnectionKeepalive: &corev3.KeepaliveSettings{Interval: durationpb.New(time.Second), Timeout: durationpb.New(2 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	h := m.h2
	if h.MaxConcurrentStreams != 7 || h.MaxUploadBufferPerStream != 70000 || h.MaxUploadBufferPerConnection != 80000 ||
		h.MaxDecoderHeaderTableSize != 1 || h.ReadIdleTimeout != time.Second || h.PingTimeout != 2*time.Second {
		t.Errorf("options not applied: %+v", h)
	}
	for _, tc := range []struct {
		o    *corev3.Http2ProtocolOptions
		want string
	}{
		{&corev3.Http2ProtocolOptions{MaxConcurrentStreams: wrapperspb.UInt32(0)}, "max_concurrent_streams"},
		{&corev3.Http2ProtocolOptions{InitialStreamWindowSize: wrapperspb.UInt32(1000)}, "initial_stream_window_size"},
		{&corev3.Http2ProtocolOptions{InitialConnectionWindowSize: wrapperspb.UInt32(1 << 31)}, "initial_connection_window_size"},
		{&corev3.Http2ProtocolOptions{MaxOutboundFrames: wrapperspb.UInt32(5)}, "max_outbound_frames"},
		{&corev3.Http2ProtocolOptions{ConnectionKeepalive: &corev3.KeepaliveSettings{ConnectionIdleInterval: durationpb.New(time.Second)}}, "connection_idle_interval"},
	} {
		if _, err := mk(tc.o); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error naming %s", tc.o, err, tc.want)
		}
	}
}
