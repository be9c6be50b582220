package hcm

import (
	"net/url"
	"reflect"
	"testing"
)

var targetSeeds = []string{"/", "/a/b", "/bench", "/a?b=c&d=e", "/a?", "/a??", "/a?b?", "/?", "//x/y", "/a%20b", "/a b",
	"/a#f", "/a?x#f", "/é", "/a?é", "/a?\x01", "/a\x7f", "/:@&=+$,;~!*'()", "/a/./../b", "*", "a/b", "", "?x", "/a?b=%zz"}

// TestParseTarget: the own origin-form parser agrees with
// url.ParseRequestURI on the targets it takes.
func TestParseTarget(t *testing.T) {
	taken := 0
	for _, s := range targetSeeds {
		if checkTarget(t, s) {
			taken++
		}
	}
	if taken < 10 {
		t.Fatalf("the own parser took only %d of the seeds", taken)
	}
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range targetSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkTarget(t, s) })
}

func checkTarget(t *testing.T, s string) bool {
	var u url.URL
	if !parseTarget(s, &u) {
		return false
	}
	want, err := url.ParseRequestURI(s)
	if err != nil {
		t.Fatalf("%q: own parser took a target net/url rejects (%v)", s, err)
	}
	if !reflect.DeepEqual(&u, want) {
		t.Fatalf("%q: own %#v, net/url %#v", s, u, *want)
	}
	return true
}
