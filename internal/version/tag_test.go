package version

import (
	"regexp"
	"strings"
	"testing"
)

// ValidTag is the OCI distribution tag grammar, checked against the
// regexp it replaces.
func TestValidTagIsTheGrammar(t *testing.T) {
	grammar := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	cases := []string{"", "v1", "1c8dc88", "1c8dc88-dirty", "v1.2.3_rc.1", "_x", ".x", "-x", "a/b", "a:b", "a b", "é",
		"A" + strings.Repeat("b", 127), "A" + strings.Repeat("b", 128), "x\n", "dev"}
	for _, c := range cases {
		if got, want := ValidTag(c), grammar.MatchString(c); got != want {
			t.Errorf("ValidTag(%q) = %v, the grammar says %v", c, got, want)
		}
	}
	if TagFor("v1.0") != "v1.0" || TagFor("a/b") != "dev" {
		t.Errorf("TagFor: %q %q", TagFor("v1.0"), TagFor("a/b"))
	}
}

func FuzzValidTag(f *testing.F) {
	grammar := regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	f.Add("v1.2.3")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := ValidTag(s), grammar.MatchString(s); got != want {
			t.Errorf("ValidTag(%q) = %v, the grammar says %v", s, got, want)
		}
	})
}
