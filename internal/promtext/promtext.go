// Package promtext writes Prometheus' text exposition format (version
// 0.0.4), the one correct encoder for the control plane's /metrics and the
// proxy's stats endpoints: label values escape \, " and newline, HELP text
// escapes \ and newline, and nothing else is touched (Go's %q would also
// rewrite non-ASCII and control characters into escapes Prometheus does not
// read). No imports beyond the standard library, so the proxy may use it.
package promtext

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ContentType is the Content-Type of the format.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

var (
	labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
)

// EscapeLabel escapes a label value.
func EscapeLabel(v string) string {
	if !strings.ContainsAny(v, "\\\"\n") {
		return v
	}
	return labelEscaper.Replace(v)
}

// Labels renders name/value pairs as `a="x",b="y"` (without braces), for
// callers that render a series' labels once and reuse them. An odd
// trailing name is ignored.
func Labels(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(kv[i])
		b.WriteString(`="`)
		b.WriteString(EscapeLabel(kv[i+1]))
		b.WriteByte('"')
	}
	return b.String()
}

// Writer writes metric families to w. Callers write one family's samples
// together, after its Header. The first write error sticks: later calls do
// nothing, and Err reports it.
type Writer struct {
	w   io.Writer
	n   int64
	err error
	buf []byte
}

// NewWriter returns a Writer on w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Header starts a family: "# HELP" (when help is not empty) and "# TYPE"
// (counter, gauge, histogram, summary or untyped).
func (w *Writer) Header(name, typ, help string) {
	b := w.buf[:0]
	if help != "" {
		b = append(b, "# HELP "...)
		b = append(b, name...)
		b = append(b, ' ')
		b = append(b, helpEscaper.Replace(help)...)
		b = append(b, '\n')
	}
	b = append(b, "# TYPE "...)
	b = append(b, name...)
	b = append(b, ' ')
	b = append(b, typ...)
	b = append(b, '\n')
	w.write(b)
}

// Int writes one sample; labels is a Labels string ("" for none).
func (w *Writer) Int(name, labels string, v int64) {
	w.write(strconv.AppendInt(w.sample(name, labels), v, 10), '\n')
}

// Uint writes one sample with an unsigned value.
func (w *Writer) Uint(name, labels string, v uint64) {
	w.write(strconv.AppendUint(w.sample(name, labels), v, 10), '\n')
}

// Float writes one sample with a float value (+Inf, -Inf and NaN as the
// format spells them).
func (w *Writer) Float(name, labels string, v float64) {
	w.write(strconv.AppendFloat(w.sample(name, labels), v, 'g', -1, 64), '\n')
}

func (w *Writer) sample(name, labels string) []byte {
	b := append(w.buf[:0], name...)
	if labels != "" {
		b = append(b, '{')
		b = append(b, labels...)
		b = append(b, '}')
	}
	return append(b, ' ')
}

func (w *Writer) write(b []byte, tail ...byte) {
	b = append(b, tail...)
	w.buf = b
	if w.err != nil {
		return
	}
	n, err := w.w.Write(b)
	w.n += int64(n)
	w.err = err
}

// Err is the first write error.
func (w *Writer) Err() error { return w.err }

// N is the number of bytes written.
func (w *Writer) N() int64 { return w.n }

// Lint checks text against the exposition format's grammar, line by line:
// comments are "# HELP name text" or "# TYPE name type", samples are
// name{label="value",…} value with only \\, \" and \n escaped in values.
// Tests use it on every endpoint that serves this format.
func Lint(text string) error {
	for i, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if err := lintLine(line); err != nil {
			return fmt.Errorf("line %d %q: %w", i+1, line, err)
		}
	}
	return nil
}

func lintLine(line string) error {
	if rest, ok := strings.CutPrefix(line, "# "); ok {
		kind, rest, _ := strings.Cut(rest, " ")
		name, arg, _ := strings.Cut(rest, " ")
		if !validName(name) {
			return fmt.Errorf("bad metric name %q", name)
		}
		switch kind {
		case "HELP":
			return nil
		case "TYPE":
			switch arg {
			case "counter", "gauge", "histogram", "summary", "untyped":
				return nil
			}
			return fmt.Errorf("bad type %q", arg)
		}
		return nil // other comments are allowed
	}
	i := strings.IndexAny(line, "{ ")
	if i < 0 || !validName(line[:i]) {
		return fmt.Errorf("bad sample name")
	}
	rest := line[i:]
	if rest[0] == '{' {
		rest = rest[1:]
		for rest != "" && rest[0] != '}' {
			j := strings.Index(rest, `="`)
			if j < 0 || !validName(rest[:j]) || strings.Contains(rest[:j], ":") {
				return fmt.Errorf("bad label name")
			}
			rest = rest[j+2:]
			for {
				if rest == "" {
					return fmt.Errorf("unterminated label value")
				}
				c := rest[0]
				rest = rest[1:]
				if c == '"' {
					break
				}
				if c == '\n' {
					return fmt.Errorf("raw newline in label value")
				}
				if c == '\\' {
					if rest == "" || !strings.ContainsRune(`\"n`, rune(rest[0])) {
						return fmt.Errorf("bad escape in label value")
					}
					rest = rest[1:]
				}
			}
			rest = strings.TrimPrefix(rest, ",")
		}
		if rest == "" {
			return fmt.Errorf("unterminated label set")
		}
		rest = rest[1:]
	}
	v, ok := strings.CutPrefix(rest, " ")
	if !ok {
		return fmt.Errorf("no value")
	}
	v, _, _ = strings.Cut(v, " ") // an optional timestamp follows
	if _, err := strconv.ParseFloat(v, 64); err != nil {
		return fmt.Errorf("bad value %q", v)
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i, c := range s {
		if c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (i > 0 && c >= '0' && c <= '9') {
			continue
		}
		return false
	}
	return true
}
