// Package apiauth holds the control plane's admin credential: a random
// token the control plane creates in its private state directory, the
// per-user file through which local clients (weft apply/get/delete, the
// demo, tests) find it with no flags, and the constant-time check.
//
// Discovery stays private: the token is published as a 0600 file in a 0700
// directory owned by the user who runs the control plane
// ($XDG_RUNTIME_DIR/weft/control-planes, else <user cache dir>/weft/
// control-planes, else <tmp>/weft-<uid>/control-planes), named after the
// monitoring address. Only that user (and
// root) can read it; a client run by another user must be given the token
// (--token, WEFT_TOKEN or --token-file, e.g. the state dir's admin-token).
package apiauth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/weftmesh/weft/internal/controlplane/statedir"
)

// StateFile is the token's file name inside the state directory.
const StateFile = "admin-token"

// tokenBytes of randomness: 256 bits.
const tokenBytes = 32

// LoadOrCreate returns the token kept in stateDir/admin-token, creating
// it (mode 0600) when absent or unusable. Keeping it across restarts lets
// an operator's script hold it; deleting the file rotates it.
func LoadOrCreate(stateDir string) (string, error) {
	p := filepath.Join(stateDir, StateFile)
	if tok, err := readPrivate(p); err == nil && valid(tok) {
		return tok, nil
	}
	tok := New()
	if err := statedir.WriteFile(p, []byte(tok+"\n")); err != nil {
		return "", fmt.Errorf("writing admin token: %w", err)
	}
	return tok, nil
}

// New returns a fresh random token.
func New() string {
	b := make([]byte, tokenBytes)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b)
}

func valid(tok string) bool {
	if len(tok) != 2*tokenBytes {
		return false
	}
	_, err := hex.DecodeString(tok)
	return err == nil
}

// Equal compares a presented token with the expected one in constant time
// (for a given length); an empty expected token never matches.
func Equal(presented, expected string) bool {
	if expected == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(presented), []byte(expected)) == 1
}

// DefaultDir is where tokens are published for the current user.
func DefaultDir() (string, error) {
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return filepath.Join(d, "weft", "control-planes"), nil
		}
	}
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "weft", "control-planes"), nil
	}
	// No home (a service account, a bare CI job): a per-uid directory in
	// the temp dir. Publish and Discover refuse it if someone else made it.
	return filepath.Join(os.TempDir(), fmt.Sprintf("weft-%d", os.Geteuid()), "control-planes"), nil
}

// Keys are the discovery file names for a monitoring listen address: the
// address itself, and for a wildcard or localhost listener the loopback
// addresses a local client dials.
func Keys(listen string) []string {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return nil
	}
	hosts := []string{host}
	switch ip := net.ParseIP(host); {
	case host == "localhost":
		hosts = append(hosts, "127.0.0.1", "::1")
	case ip != nil && ip.IsUnspecified():
		hosts = append(hosts, "127.0.0.1", "::1", "localhost")
	}
	var out []string
	for _, h := range hosts {
		out = append(out, key(h, port))
	}
	return out
}

// key names an address's discovery file: "127.0.0.1_15014", "__1_15014".
func key(host, port string) string {
	r := strings.NewReplacer(":", "_", "/", "_", "%", "_", "[", "", "]", "")
	return r.Replace(host) + "_" + port + ".token"
}

// Publish writes tok for every key of listen into dir (created 0700) and
// returns the files written, for Unpublish. Each file also names the
// publishing process (pid and start time), so that a client can tell the
// file of a control plane that died without unpublishing (SIGKILL, a
// crash) from a live one: the port may since serve another control plane
// with another token.
func Publish(dir, listen, tok string) ([]string, error) {
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	body := tok + "\n" + owner(os.Getpid()) + "\n"
	var files []string
	for _, k := range Keys(listen) {
		p := filepath.Join(dir, k)
		if err := statedir.WriteFile(p, []byte(body)); err != nil {
			return files, err
		}
		files = append(files, p)
	}
	return files, nil
}

// Unpublish removes discovery files that still hold tok (a newer control
// plane on the same address may have replaced them).
func Unpublish(files []string, tok string) {
	for _, p := range files {
		if cur, _, err := readPublished(p); err == nil && cur == tok {
			os.Remove(p)
		}
	}
}

// owner names a process as "pid N start S", S being its start time in
// clock ticks since boot (/proc/N/stat), which tells a reused pid apart.
func owner(pid int) string {
	return fmt.Sprintf("pid %d start %s", pid, startTime(pid))
}

// startTime is field 22 of /proc/pid/stat, or "" when it cannot be read.
func startTime(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ""
	}
	// The command name (field 2) may hold spaces; fields resume after ")".
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return ""
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return ""
	}
	return f[19]
}

// alive reports whether the owner line of a published file still
// describes a running process. A file without one (written by an older
// Weft) is taken as alive.
func alive(line string) bool {
	var pid int
	var start string
	if n, _ := fmt.Sscanf(line, "pid %d start %s", &pid, &start); n < 1 || pid <= 0 {
		return true
	}
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	if cur := startTime(pid); start != "" && cur != "" && cur != start {
		return false // the pid was reused by another process
	}
	return true
}

// readPublished reads a discovery file: the token and whether its
// publisher still runs.
func readPublished(p string) (tok string, live bool, err error) {
	s, err := readPrivate(p)
	if err != nil {
		return "", false, err
	}
	tok, rest, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(tok), alive(strings.TrimSpace(rest)), nil
}

// Discover returns the token published in dir for the address a client
// dials ("host:port"), or "" when there is none. A file left by a control
// plane that no longer runs is removed, not used.
func Discover(dir, addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if err := checkPrivate(dir, true); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", nil
		}
		return "", err
	}
	hosts := []string{host}
	if host == "localhost" {
		hosts = append(hosts, "127.0.0.1", "::1")
	}
	for _, h := range hosts {
		p := filepath.Join(dir, key(h, port))
		tok, live, err := readPublished(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err == nil && !live {
			os.Remove(p)
			continue
		}
		return tok, err
	}
	return "", nil
}

// ReadFile reads a token file (--token-file): it must not be readable by
// group or others.
func ReadFile(p string) (string, error) { return readPrivate(p) }

func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	// The parent must be ours too (in a shared temp dir, someone else
	// could have made it and could swap what is inside).
	if err := checkOwner(filepath.Dir(dir)); err != nil {
		return err
	}
	return checkPrivate(dir, true)
}

func checkOwner(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%s: owned by uid %d, not by this user", p, sys.Uid)
	}
	return nil
}

// checkPrivate refuses a file or directory that another user owns or that
// group or others can access: a token there is not ours or not private.
func checkPrivate(p string, isDir bool) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if st.IsDir() != isDir {
		return fmt.Errorf("%s: unexpected file type", p)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%s: owned by uid %d, not by this user", p, sys.Uid)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s: mode %v lets others read it; want %v", p, st.Mode().Perm(), map[bool]os.FileMode{true: 0o700, false: 0o600}[isDir])
	}
	return nil
}

func readPrivate(p string) (string, error) {
	if err := checkPrivate(p, false); err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
