package main

import (
	"bytes"
	"slices"
	"testing"
)

// TestCPXDSFlag: the control-plane part measures both xDS variants by
// default; -cp-xds picks one and refuses anything else.
func TestCPXDSFlag(t *testing.T) {
	o, err := parse(nil, &bytes.Buffer{})
	if err != nil || !slices.Equal(o.cpXDS, []string{xdsSotW, xdsDelta}) {
		t.Fatalf("default: %v %v", o.cpXDS, err)
	}
	if o, err = parse([]string{"-cp-xds", "delta"}, &bytes.Buffer{}); err != nil || !slices.Equal(o.cpXDS, []string{xdsDelta}) {
		t.Fatalf("delta: %v %v", o.cpXDS, err)
	}
	if _, err := parse([]string{"-cp-xds", "rest"}, &bytes.Buffer{}); err == nil {
		t.Fatal("-cp-xds rest accepted")
	}
}
