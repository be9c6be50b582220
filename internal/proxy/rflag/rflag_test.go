package rflag

import "testing"

func TestString(t *testing.T) {
	for _, tc := range []struct {
		f    Flags
		want string
	}{{0, "-"}, {UO, "UO"}, {UH | UT, "UH,UT"}, {URX | UF, "UF,URX"}, {FI, "FI"}} {
		if got := tc.f.String(); got != tc.want {
			t.Errorf("%d: got %q want %q", tc.f, got, tc.want)
		}
	}
}
