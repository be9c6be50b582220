package router

import (
	"io"
	"strings"
	"testing"
)

func TestReplayBody(t *testing.T) {
	rb := newReplayBody(io.NopCloser(strings.NewReader("hello world")))
	v1 := rb.view()
	buf := make([]byte, 5)
	if n, _ := v1.Read(buf); string(buf[:n]) != "hello" {
		t.Fatalf("first read %q", buf[:n])
	}
	v2 := rb.view() // a retry after 5 bytes were sent
	if _, err := v1.Read(buf); err != errStaleAttempt {
		t.Fatalf("stale view read: %v", err)
	}
	all, err := io.ReadAll(v2)
	if err != nil || string(all) != "hello world" {
		t.Fatalf("replay %q %v", all, err)
	}
	if !rb.replayable() {
		t.Fatal("small body not replayable")
	}
	all, _ = io.ReadAll(rb.view())
	if string(all) != "hello world" {
		t.Fatalf("second replay %q", all)
	}

	big := newReplayBody(io.NopCloser(strings.NewReader(strings.Repeat("x", MaxBuffer+1))))
	n, err := io.Copy(io.Discard, big.view())
	if err != nil || n != MaxBuffer+1 || big.replayable() {
		t.Fatalf("big body: %d %v replayable=%v", n, err, big.replayable())
	}
}
