package listener

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/weftmesh/weft/internal/meshtest"
)

func pipeAddr(path string, mode uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_Pipe{Pipe: &corev3.Pipe{Path: path, Mode: mode}}}
}

// A listener on address.pipe binds a unix socket (replacing a stale socket
// file), serves its filter chain, keeps the socket across updates and
// removes the file when it is removed.
func TestPipeListener(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "egress.sock")
	// A stale socket from an earlier process.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	m := NewManager(Options{})
	defer m.Close(context.Background())
	mk := func(tag string) *Config {
		return compile(t, &listenerv3.Listener{Name: "unix://" + path + "_0", Address: pipeAddr(path, 0o660),
			FilterChains: []*listenerv3.FilterChain{fc(tag, nil)}}, fakeDeps{})
	}
	if err := m.Update([]*Config{mk("v1")}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o660 {
		t.Fatalf("socket file: %v %v, want mode 0660", fi, err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := readLine(t, c); !strings.HasPrefix(got, "v1 listener=unix://"+path+"_0") {
		t.Fatalf("got %q", got)
	}
	if err := m.Update([]*Config{mk("v2")}); err != nil {
		t.Fatal(err)
	}
	echo(t, c, "kept") // same socket, connection survives
	c2, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close()
	if got := readLine(t, c2); !strings.HasPrefix(got, "v2 ") {
		t.Fatalf("after update got %q", got)
	}
	if err := m.Update(nil); err != nil {
		t.Fatal(err)
	}
	meshtest.WaitFor(t, "socket file removed", func() bool {
		_, err := os.Stat(path)
		return os.IsNotExist(err)
	})
}

func TestPipeListenerRejects(t *testing.T) {
	dir := t.TempDir()
	notSock := filepath.Join(dir, "file")
	if err := os.WriteFile(notSock, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		l    *listenerv3.Listener
		want string
	}{
		{"empty path", &listenerv3.Listener{Name: "l", Address: pipeAddr("", 0), FilterChains: []*listenerv3.FilterChain{fc("a", nil)}}, "address.pipe.path"},
		{"bad mode", &listenerv3.Listener{Name: "l", Address: pipeAddr("/x", 0o1777), FilterChains: []*listenerv3.FilterChain{fc("a", nil)}}, "address.pipe.mode"},
		{"original dst", &listenerv3.Listener{Name: "l", Address: pipeAddr("/x", 0), UseOriginalDst: wrapperspb.Bool(true),
			FilterChains: []*listenerv3.FilterChain{fc("a", nil)}}, "use_original_dst"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.l, fakeDeps{})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), `listener "l"`) {
				t.Fatalf("err = %v, want it to name the listener and %q", err, tc.want)
			}
		})
	}
	// Something that is not a socket at the path is never removed.
	m := NewManager(Options{})
	defer m.Close(context.Background())
	c := compile(t, &listenerv3.Listener{Name: "l", Address: pipeAddr(notSock, 0), FilterChains: []*listenerv3.FilterChain{fc("a", nil)}}, fakeDeps{})
	if err := m.Update([]*Config{c}); err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("err = %v, want not a socket", err)
	}
	if b, err := os.ReadFile(notSock); err != nil || string(b) != "x" {
		t.Fatalf("file at the path was touched: %q %v", b, err)
	}
}
