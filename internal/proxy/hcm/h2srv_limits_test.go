package hcm

import (
	"net"
	"runtime"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/net/http2"
	"google.golang.org/protobuf/types/known/durationpb"
)

// A client that floods PING or SETTINGS frames and never reads the
// answers makes the server queue control frames: both servers bound the
// queue (x/net and the own server end the connection past 10,000 queued
// frames) and keep serving others.
func TestHTTP2ControlFloods(t *testing.T) {
	be := backend(t, echo("a"))
	for _, kind := range []string{"ping", "settings"} {
		for _, own := range []bool{false, true} {
			name := kind
			if own {
				name += "/own"
			} else {
				name += "/xnet"
			}
			t.Run(name, func(t *testing.T) {
				p := startProxy(t, proxyConfig{clusters: []upstream{{name: "a", addrs: []string{be}}},
					routes: rc(vhost(rt("r", "/", toCluster("a")))), xnetH2: !own,
					opts: Options{OwnHTTP2: own, OnComplete: func(*StreamInfo) {}}})
				// A stalled connection's kernel buffers are freed before the
				// next case (socket memory pressure stalls loopback TCP).
				defer p.closeAll()
				g0 := runtime.NumGoroutine()
				c, err := net.Dial("tcp", p.addr)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close()
				// A small receive buffer: the server's answers back up soon.
				c.(*net.TCPConn).SetReadBuffer(4 << 10)
				c.Write([]byte(http2.ClientPreface))
				fr := http2.NewFramer(c, nil)
				fr.WriteSettings()
				deadline := time.Now().Add(20 * time.Second)
				c.SetWriteDeadline(time.Now().Add(4 * time.Second))
				sent := 0
				for ; sent < 2_000_000; sent++ {
					if kind == "ping" {
						err = fr.WritePing(false, [8]byte{byte(sent)})
					} else {
						err = fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 65535})
					}
					if err != nil {
						break
					}
				}
				if err == nil {
					t.Fatalf("the server took %d %s frames with no answer read", sent, kind)
				}
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					// Loopback TCP can stall both ways with the answers
					// unread (x/net's server too, for SETTINGS; PINGs under
					// socket memory pressure from a loaded machine): what
					// matters is that the server holds its queue bounded.
					t.Logf("TCP stalled after %d %s frames", sent, kind)
					if own {
						p.mgr.own.mu.Lock()
						for sc := range p.mgr.own.conns {
							sc.ctrlMu.Lock()
							if sc.ctrlN > h2sMaxCtrlFrames || len(sc.ctrl) > 9*h2sMaxCtrlFrames {
								t.Errorf("%d control frames (%d bytes) queued", sc.ctrlN, len(sc.ctrl))
							}
							sc.ctrlMu.Unlock()
						}
						p.mgr.own.mu.Unlock()
					}
					c.Close()
				} else {
					t.Logf("connection ended after %d %s frames: %v", sent, kind, err)
				}
				resp, err := h2cClient().Get("http://" + p.addr + "/")
				if err != nil {
					t.Fatalf("other clients: %v", err)
				}
				resp.Body.Close()
				for runtime.NumGoroutine() > g0+10 {
					if time.Now().After(deadline) {
						t.Fatalf("goroutines %d, %d before", runtime.NumGoroutine(), g0)
					}
					time.Sleep(20 * time.Millisecond)
				}
			})
		}
	}
}

// connection_keepalive: a connection silent for the interval gets a
// PING; one that does not answer within the timeout is closed. One that
// answers stays open.
func TestOwnH2Keepalive(t *testing.T) {
	p := startProxy(t, proxyConfig{routes: rc(vhost(rt("r", "/", toCluster("a")))),
		opts: Options{OwnHTTP2: true, OnComplete: func(*StreamInfo) {}},
		mutateHCM: func(h *hcmv3HCM) {
			h.Http2ProtocolOptions = &corev3.Http2ProtocolOptions{ConnectionKeepalive: &corev3.KeepaliveSettings{
				Interval: durationpb.New(100 * time.Millisecond), Timeout: durationpb.New(200 * time.Millisecond)}}
		}})
	for _, answer := range []bool{false, true} {
		c, err := net.Dial("tcp", p.addr)
		if err != nil {
			t.Fatal(err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write([]byte(http2.ClientPreface))
		fr := http2.NewFramer(c, c)
		fr.WriteSettings()
		pings := 0
		start := time.Now()
		for {
			f, err := fr.ReadFrame()
			if err != nil {
				if answer {
					t.Fatalf("answering client: connection ended after %d pings: %v", pings, err)
				}
				if pings == 0 {
					t.Fatalf("closed without a ping: %v", err)
				}
				break // closed after an unanswered ping
			}
			if pf, ok := f.(*http2.PingFrame); ok && !pf.IsAck() {
				pings++
				if answer {
					fr.WritePing(true, pf.Data)
				}
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				fr.WriteSettingsAck()
			}
			if answer && pings >= 3 {
				break // kept open across several intervals
			}
			if !answer && time.Since(start) > 5*time.Second {
				t.Fatalf("silent client still connected after %d pings", pings)
			}
		}
		c.Close()
	}
}
