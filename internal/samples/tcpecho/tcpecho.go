// Package tcpecho is Istio's tcp-echo sample: for every line a client sends
// it writes back "<prefix> <line>", and keeps the connection open until the
// client closes its side. One server may listen on several ports (Istio's
// listens on 9000, 9001 and 9002).
package tcpecho

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// maxLine bounds one line so a client cannot make the server buffer
// without end.
const maxLine = 1 << 20

// Server echoes lines with a prefix.
type Server struct {
	Prefix string
	Log    *slog.Logger
	// IdleTimeout closes connections silent for this long (0: never).
	IdleTimeout time.Duration
}

// Serve accepts connections on every listener until ctx ends, then closes
// the listeners and the open connections and returns.
func (s *Server) Serve(ctx context.Context, lns []net.Listener) error {
	log := s.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		log.Info("listening", "address", ln.Addr().String(), "prefix", s.Prefix)
		wg.Add(1)
		go func(ln net.Listener) {
			defer wg.Done()
			for {
				c, err := ln.Accept()
				if err != nil {
					if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
						errc <- err
					}
					return
				}
				mu.Lock()
				conns[c] = struct{}{}
				mu.Unlock()
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.handle(log, c)
					mu.Lock()
					delete(conns, c)
					mu.Unlock()
				}()
			}
		}(ln)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	for _, ln := range lns {
		ln.Close()
	}
	mu.Lock()
	for c := range conns {
		c.Close()
	}
	mu.Unlock()
	wg.Wait()
	return err
}

func (s *Server) handle(log *slog.Logger, c net.Conn) {
	defer c.Close()
	log.Info("connection", "remote", c.RemoteAddr().String(), "local", c.LocalAddr().String())
	r := bufio.NewReaderSize(c, 4096)
	w := bufio.NewWriter(c)
	lines := 0
	for {
		if s.IdleTimeout > 0 {
			c.SetReadDeadline(time.Now().Add(s.IdleTimeout))
		}
		line, err := readLine(r)
		if len(line) > 0 {
			lines++
			w.WriteString(s.Prefix)
			w.WriteByte(' ')
			w.Write(line)
			if r.Buffered() == 0 || err != nil {
				if werr := w.Flush(); werr != nil {
					return
				}
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				log.Info("connection ended", "remote", c.RemoteAddr().String(), "lines", lines, "error", err)
			} else {
				log.Info("connection closed", "remote", c.RemoteAddr().String(), "lines", lines)
			}
			return
		}
	}
}

// readLine returns the next line including its newline; at EOF a trailing
// partial line is returned with io.EOF.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		line = append(line, frag...)
		if len(line) > maxLine {
			return nil, errors.New("line too long")
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		return line, err
	}
}
