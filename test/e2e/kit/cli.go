package kit

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// CLI runs the weft command against one control plane (its monitoring
// address, the API `weft apply/get/delete` use).
type CLI struct {
	Bin          string // the weft binary
	ControlPlane string // host:port of the control plane's monitoring API
}

func (c CLI) command(stdin string, args []string) *exec.Cmd {
	cmd := exec.Command(c.Bin, args...)
	cmd.Env = append(os.Environ(), "WEFT_CONTROL_PLANE="+c.ControlPlane)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

// Output runs weft with stdin and returns its stdout and stderr together,
// and the error of a failed run.
func (c CLI) Output(t testing.TB, stdin string, args ...string) (string, error) {
	t.Helper()
	cmd := c.command(stdin, args)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	return out.String(), err
}

// Run runs weft with stdin and returns its exit code, stdout and stderr
// apart; it fails t only when weft could not run at all.
func (c CLI) Run(t testing.TB, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := c.command(stdin, args)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), o.String(), e.String()
	} else if err != nil {
		t.Fatal(err)
	}
	return 0, o.String(), e.String()
}

// Apply runs `weft apply -f -` with yaml, failing t on an error, and
// deletes what it applied when the test ends.
func (c CLI) Apply(t testing.TB, yaml string) {
	t.Helper()
	if out, err := c.Output(t, yaml, "apply", "-f", "-"); err != nil {
		t.Fatalf("weft apply: %v\n%s", err, out)
	}
	t.Cleanup(func() { c.Delete(t, yaml) })
}

// Delete runs `weft delete -f -` document by document: a later apply in
// the same test may have replaced or removed some of them already
// (NotFound is an error, as with kubectl), and that must not keep the
// rest alive. Errors other than NotFound are logged.
func (c CLI) Delete(t testing.TB, yaml string) {
	t.Helper()
	for _, doc := range strings.Split(yaml, "\n---\n") {
		if !strings.Contains(doc, "kind:") {
			continue // header comments
		}
		if out, err := c.Output(t, doc, "delete", "-f", "-"); err != nil && !strings.Contains(out, "not found") {
			t.Logf("weft delete: %v\n%s", err, out)
		}
	}
}

// WriteConfig replaces dir/name with data atomically, as an editor or git
// would, so a watching control plane never reads half a file.
func WriteConfig(t testing.TB, dir, name, data string) {
	t.Helper()
	tmp := filepath.Join(dir, "."+name+".tmp")
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}
