package tcpecho

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReadLine: lines read back concatenate to the input, each ends with
// its newline except a last partial one.
func FuzzReadLine(f *testing.F) {
	for _, s := range []string{"", "a\n", "a\nb", "\n\n", "no newline"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReaderSize(bytes.NewReader(in), 16)
		var out []byte
		for {
			line, err := readLine(r)
			out = append(out, line...)
			if err != nil {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("error %v", err)
				}
				break
			}
			if len(line) == 0 || line[len(line)-1] != '\n' {
				t.Fatalf("line %q without newline before EOF", line)
			}
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("got %q want %q", out, in)
		}
	})
}
