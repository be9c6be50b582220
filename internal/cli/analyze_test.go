package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

const examplesDir = "../../examples"

func runAnalyze(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(append([]string{"analyze"}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// TestAnalyzeInvalidExamples runs analyze on every examples/invalid file:
// each must fail and print the message its "# expect:" line names.
func TestAnalyzeInvalidExamples(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(examplesDir, "invalid", "*.yaml"))
	if err != nil || len(files) < 20 {
		t.Fatalf("found %d invalid examples (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var expect string
			var args []string
			for _, line := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(line, "# expect: "); ok {
					expect = v
				}
				if v, ok := strings.CutPrefix(line, "# args: "); ok {
					args = strings.Fields(v)
				}
			}
			if expect == "" {
				t.Fatal("no # expect: line")
			}
			code, out, errOut := runAnalyze(t, "", append(args, f)...)
			if code == 0 {
				t.Errorf("exit code 0, want non-zero; output:\n%s", out)
			}
			// Files that cannot be parsed at all are reported on stderr.
			out += errOut
			if !strings.Contains(out, expect) {
				t.Errorf("output does not contain %q:\n%s", expect, out)
			}
		})
	}
}

func TestAnalyzeExamplesClean(t *testing.T) {
	code, out, errs := runAnalyze(t, "", examplesDir)
	if code != 0 || out != "" {
		t.Fatalf("examples/: exit %d\n%s%s", code, out, errs)
	}
	if !strings.Contains(errs, "No validation issues found") {
		t.Errorf("stderr = %q", errs)
	}
	tasks, err := os.ReadDir(filepath.Join(examplesDir, "tasks"))
	if err != nil || len(tasks) < 10 {
		t.Fatalf("tasks: %d (%v)", len(tasks), err)
	}
	base := []string{examplesDir}
	for _, d := range tasks {
		dir := filepath.Join(examplesDir, "tasks", d.Name())
		args := append(base, dir)
		// A task with its own mesh settings replaces examples/mesh.yaml.
		if ownMesh(t, dir) {
			args = []string{
				filepath.Join(examplesDir, "bookinfo"), filepath.Join(examplesDir, "httpbin"),
				filepath.Join(examplesDir, "tcp-echo"), filepath.Join(examplesDir, "curl"),
				filepath.Join(examplesDir, "egress"), dir,
			}
		}
		// Info messages are advice, not problems: Istio's allow-nothing
		// task is meant to deny everything (WFT0002).
		code, out, errs := runAnalyze(t, "", args...)
		var problems []string
		for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
			if l != "" && !strings.HasPrefix(l, "Info ") {
				problems = append(problems, l)
			}
		}
		if code != 0 || len(problems) > 0 {
			t.Errorf("%s: exit %d\n%s%s", d.Name(), code, out, errs)
		}
	}
}

func ownMesh(t *testing.T, dir string) bool {
	files, _ := filepath.Glob(filepath.Join(dir, "*.yaml"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), "kind: MeshConfig") || strings.Contains(string(b), "kind: ConfigMap") {
			return true
		}
	}
	return false
}

// TestAnalyzeStdin: piping the files is the same as passing them.
func TestAnalyzeStdin(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(examplesDir, "bookinfo", "*.yaml"))
	var all strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// Exactly `cat examples/bookinfo/*.yaml`: no separators added.
		all.Write(b)
	}
	if code, out, errs := runAnalyze(t, all.String(), "-"); code != 0 || out != "" {
		t.Fatalf("clean stdin: exit %d\n%s%s", code, out, errs)
	}
	// A broken route read from stdin is reported against <stdin>.
	broken := all.String() + `---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v4}
`
	line := strings.Count(broken[:strings.Index(broken, "subset: v4")], "\n") + 1
	code, out, _ := runAnalyze(t, broken, "-")
	want := "Error [IST0101] (VirtualService default/reviews <stdin>:" + itoa(line) + `) Referenced host+subset in destinationrule not found: "reviews+v4"`
	if code == 0 || !strings.Contains(out, want) {
		t.Fatalf("exit %d, output\n%s\nwant %s", code, out, want)
	}
}

func itoa(i int) string {
	b, _ := json.Marshal(i)
	return string(b)
}

func TestAnalyzeOutputFormatsAndThreshold(t *testing.T) {
	f := filepath.Join(examplesDir, "invalid", "unreachable-rule.yaml")
	// A warning does not fail the default threshold (Error)...
	code, out, _ := runAnalyze(t, "", f)
	if code != 0 || !strings.Contains(out, "Warning [IST0130]") {
		t.Fatalf("default threshold: exit %d\n%s", code, out)
	}
	// ...but does with --failure-threshold Info.
	if code, _, _ := runAnalyze(t, "", "--failure-threshold", "Info", f); code != analyzeFailedCode {
		t.Errorf("Info threshold: exit %d", code)
	}
	code, out, _ = runAnalyze(t, "", "-o", "json", filepath.Join(examplesDir, "invalid", "subset-not-found.yaml"))
	var msgs []map[string]any
	if err := json.Unmarshal([]byte(out), &msgs); err != nil || code != analyzeFailedCode {
		t.Fatalf("json: exit %d, %v\n%s", code, err, out)
	}
	if len(msgs) != 1 || msgs[0]["code"] != "IST0101" || msgs[0]["level"] != "Error" ||
		msgs[0]["origin"] != "VirtualService default/reviews" || !strings.HasSuffix(msgs[0]["reference"].(string), "subset-not-found.yaml:36") {
		t.Errorf("json messages: %v", msgs)
	}
	code, out, _ = runAnalyze(t, "", "-o", "yaml", filepath.Join(examplesDir, "invalid", "subset-not-found.yaml"))
	var ymsgs []map[string]any
	if err := yaml.Unmarshal([]byte(out), &ymsgs); err != nil || len(ymsgs) != 1 || ymsgs[0]["code"] != "IST0101" {
		t.Errorf("yaml: exit %d, %v, %v", code, err, ymsgs)
	}
	if code, _, _ := runAnalyze(t, "", "-o", "xml", f); code != 1 {
		t.Errorf("bad -o: exit %d", code)
	}
	if code, _, _ := runAnalyze(t, "", "--failure-threshold", "Fatal", f); code != 1 {
		t.Errorf("bad threshold: exit %d", code)
	}
}

func TestAnalyzeNamespaceFilter(t *testing.T) {
	f := filepath.Join(examplesDir, "invalid", "authz-unknown-namespace.yaml") // policy in namespace foo
	if code, out, _ := runAnalyze(t, "", "-n", "default", f); code != 0 || out != "" {
		t.Errorf("-n default: exit %d\n%s", code, out)
	}
	if code, out, _ := runAnalyze(t, "", "-n", "default", "--all-namespaces", f); code == 0 || !strings.Contains(out, "IST0101") {
		t.Errorf("-n default -A: exit %d\n%s", code, out)
	}
	if code, out, _ := runAnalyze(t, "", "-n", "foo", f); code == 0 || !strings.Contains(out, "AuthorizationPolicy foo/allow-foo") {
		t.Errorf("-n foo: exit %d\n%s", code, out)
	}
	// -n also places resources that name no namespace.
	src := "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: r}\nspec:\n  hosts: [r]\n  http:\n  - route:\n    - destination: {host: r}\n"
	if _, out, _ := runAnalyze(t, src, "-n", "prod", "-"); !strings.Contains(out, "VirtualService prod/r") {
		t.Errorf("-n prod: %s", out)
	}
}

func TestAnalyzeMissingFile(t *testing.T) {
	code, out, _ := runAnalyze(t, "", "does-not-exist.yaml")
	if code == 0 || !strings.Contains(out, "does-not-exist.yaml") {
		t.Errorf("exit %d\n%s", code, out)
	}
}
