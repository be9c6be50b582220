package h1head

import (
	"bufio"
	"io"
	"net/http"
)

// LengthBody is a Content-Length body read from a connection's buffer.
// Like net/http's, it returns io.EOF with the last bytes (so the
// connection is reusable at once), io.ErrUnexpectedEOF when the
// connection ends early, and drains what is left on Close. Not safe for
// concurrent use.
type LengthBody struct {
	br     *bufio.Reader
	left   int64
	closed bool
}

// Reset makes b read n bytes from br.
func (b *LengthBody) Reset(br *bufio.Reader, n int64) {
	*b = LengthBody{br: br, left: n}
}

func (b *LengthBody) Read(p []byte) (int, error) {
	if b.closed {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.br.Read(p)
	b.left -= int64(n)
	if err == io.EOF {
		b.left, err = 0, io.ErrUnexpectedEOF // then io.EOF, as net/http
	} else if err == nil && b.left == 0 {
		err = io.EOF
	}
	return n, err
}

// Close drains what is left, as net/http's body does, so the connection
// stays in step.
func (b *LengthBody) Close() error {
	if b.closed {
		return nil
	}
	_, err := io.Copy(io.Discard, b)
	b.closed = true
	return err
}
