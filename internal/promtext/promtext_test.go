package promtext

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestWriter(t *testing.T) {
	var b bytes.Buffer
	w := NewWriter(&b)
	w.Header("weft_x_total", "counter", "Help with a \\ and a\nnewline.")
	w.Int("weft_x_total", Labels("file", `a "quoted"\path`+"\nnext", "name", "café\tx"), 3)
	w.Uint("weft_x_total", "", 4)
	w.Header("weft_y", "gauge", "")
	w.Float("weft_y", Labels("le", "+Inf"), math.Inf(1))
	w.Float("weft_y", "", 0.25)
	want := `# HELP weft_x_total Help with a \\ and a\nnewline.
# TYPE weft_x_total counter
weft_x_total{file="a \"quoted\"\\path\nnext",name="café	x"} 3
weft_x_total 4
# TYPE weft_y gauge
weft_y{le="+Inf"} +Inf
weft_y 0.25
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	if w.N() != int64(b.Len()) || w.Err() != nil {
		t.Errorf("N %d, Err %v", w.N(), w.Err())
	}
	if err := Lint(b.String()); err != nil {
		t.Error(err)
	}
}

type failing struct{ n int }

func (f *failing) Write(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("broken pipe")
	}
	f.n--
	return len(p), nil
}

func TestWriterStickyError(t *testing.T) {
	f := &failing{n: 1}
	w := NewWriter(f)
	w.Header("a", "gauge", "")
	w.Int("a", "", 1)
	w.Int("a", "", 2)
	if w.Err() == nil || !strings.Contains(w.Err().Error(), "broken pipe") {
		t.Fatalf("Err = %v", w.Err())
	}
}

func TestLint(t *testing.T) {
	for _, bad := range []string{
		`x{a="b} 1`,       // unterminated
		`x{a="\x"} 1`,     // Go's %q escape
		`x{a="\u00e9"} 1`, // Go's %q escape
		`x{a="b"} one`,    // value
		`0x 1`,            // name
		`x{a:b="c"} 1`,    // label name
		"# TYPE x countr", // type
		`x{a="b"}1`,       // no space
		`x{a="b",c="d"`,   // no closing brace
	} {
		if Lint(bad) == nil {
			t.Errorf("Lint accepted %q", bad)
		}
	}
	if err := Lint("# HELP x h\n# TYPE x counter\nx{a=\"é\\n\\\\\\\"\"} 1 1700000000\nx 2\n"); err != nil {
		t.Error(err)
	}
}
