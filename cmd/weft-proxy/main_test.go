package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestRun(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		code     int
		out, err string
	}{
		{[]string{"version"}, 0, "weft-proxy version", ""},
		{nil, 2, "", "usage"},
		{[]string{"gateway"}, 2, "", `unknown command "gateway"`},
		{[]string{"sidecar", "--ip", "nope"}, 2, "", "--ip"},
		{[]string{"sidecar", "-h"}, 0, "", "-xds"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.err) {
			t.Errorf("%v: code %d, stdout %q, stderr %q", tc.args, code, out.String(), errb.String())
		}
	}
}
