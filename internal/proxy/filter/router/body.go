package router

import (
	"errors"
	"io"
	"sync"
)

// replayBody lets a streaming request body be sent again on a retry: it
// records what attempts read (up to MaxBuffer) and replays that before
// reading on from the source. Nothing waits for the whole body, so
// streaming requests (gRPC) flow while still being retriable as long as
// they stay small — Envoy's buffer-limit semantics.
//
// A transport may keep reading an attempt's body after RoundTrip returned;
// each attempt therefore reads through its own view, and views of older
// attempts fail. Bytes an old view pulled from the source are kept for the
// new one. The source is never read under mu, so a retry decision never
// waits for the client to send more.
type replayBody struct {
	readMu   sync.Mutex // serialises reads of src
	mu       sync.Mutex // guards the fields below
	src      io.ReadCloser
	buf      []byte // bytes [0, len(buf)) of the body, while !overflow
	total    int    // bytes read from src so far
	overflow bool   // more than MaxBuffer was read: no more replays
	gen      int    // current attempt; older views fail
	srcErr   error
}

var errStaleAttempt = errors.New("request body belongs to a newer attempt")

func newReplayBody(src io.ReadCloser) *replayBody { return &replayBody{src: src} }

// view returns a reader for a new attempt, starting from the beginning.
func (b *replayBody) view() io.ReadCloser {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.gen++
	return &bodyView{b: b, gen: b.gen}
}

// replayable reports whether another attempt can resend the body.
func (b *replayBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.overflow
}

type bodyView struct {
	b   *replayBody
	gen int
	pos int // absolute offset in the body
}

func (v *bodyView) Read(p []byte) (int, error) {
	b := v.b
	for {
		b.mu.Lock()
		switch {
		case v.gen != b.gen:
			b.mu.Unlock()
			return 0, errStaleAttempt
		case v.pos < len(b.buf):
			n := copy(p, b.buf[v.pos:])
			v.pos += n
			b.mu.Unlock()
			return n, nil
		case v.pos != b.total:
			b.mu.Unlock() // the bytes were dropped on overflow
			return 0, errStaleAttempt
		case b.srcErr != nil:
			err := b.srcErr
			b.mu.Unlock()
			return 0, err
		}
		b.mu.Unlock()

		b.readMu.Lock()
		b.mu.Lock()
		moved := v.pos != b.total || v.gen != b.gen || b.srcErr != nil
		b.mu.Unlock()
		if moved {
			b.readMu.Unlock()
			continue // another view read meanwhile: serve from the buffer
		}
		n, err := b.src.Read(p)
		b.mu.Lock()
		if n > 0 {
			if !b.overflow && b.total+n <= MaxBuffer {
				b.buf = append(b.buf, p[:n]...)
			} else {
				b.overflow, b.buf = true, nil
			}
			b.total += n
		}
		if err != nil {
			b.srcErr = err
		}
		stale := v.gen != b.gen
		if !stale {
			v.pos += n
		}
		b.mu.Unlock()
		b.readMu.Unlock()
		if stale {
			return 0, errStaleAttempt
		}
		return n, err
	}
}

// Close is a no-op: the source belongs to the downstream request, which the
// server closes; a transport closing one attempt must not end the others.
func (v *bodyView) Close() error { return nil }
