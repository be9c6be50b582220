// Package samples holds what Weft's built-in sample apps share: serving HTTP
// on one or more addresses until a context ends, one log line per request
// (tests read these to see what arrived), the outbound client that honours
// HTTP_PROXY (explicit mode) and the headers Istio's samples propagate.
//
// The apps themselves live in the sub-packages (httpbin, bookinfo, tcpecho,
// helloworld, external, curl, nc, load); `weft sample NAME` runs them.
package samples

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"
)

// Listen opens a TCP listener on every address; on error it closes the ones
// already open.
func Listen(addrs []string) ([]net.Listener, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no listen address")
	}
	var lns []net.Listener
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("listening on %s: %w", a, err)
		}
		lns = append(lns, ln)
	}
	return lns, nil
}

// ServeHTTP serves h on every listener until ctx ends, then shuts the
// servers down gracefully (bounded to a few seconds). It returns the first
// serve error, or nil after a clean shutdown.
func ServeHTTP(ctx context.Context, log *slog.Logger, h http.Handler, lns []net.Listener) error {
	return serve(ctx, log, h, lns, nil, Shutdown{})
}

// ServeHTTPUntil is ServeHTTP with the stop sequence sd (ShutdownFlags).
func ServeHTTPUntil(ctx context.Context, log *slog.Logger, h http.Handler, lns []net.Listener, sd Shutdown) error {
	return serve(ctx, log, h, lns, nil, sd)
}

func serve(ctx context.Context, log *slog.Logger, h http.Handler, lns []net.Listener, tlsServe func(*http.Server, net.Listener) error, sd Shutdown) error {
	errc := make(chan error, len(lns))
	var srvs []*http.Server
	var term terminating
	h = term.wrap(h)
	for _, ln := range lns {
		srv := &http.Server{
			Handler:           h,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		}
		srvs = append(srvs, srv)
		log.Info("listening", "address", ln.Addr().String())
		go func(ln net.Listener) {
			var err error
			if tlsServe != nil {
				err = tlsServe(srv, ln)
			} else {
				err = srv.Serve(ln)
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			errc <- err
		}(ln)
	}
	var first error
	select {
	case <-ctx.Done():
		first = sd.delay(log, &term, errc)
	case first = <-errc:
	}
	timeout := sd.Timeout
	if timeout <= 0 {
		timeout = DefaultShutdownTimeout
	}
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	for _, s := range srvs {
		if err := s.Shutdown(sctx); err != nil {
			s.Close()
		}
	}
	return first
}

// ServeTLS is ServeHTTP for servers whose TLSConfig is already set (the
// certificate comes from the config, not from files).
func ServeTLS(ctx context.Context, log *slog.Logger, h http.Handler, lns []net.Listener, configure func(*http.Server)) error {
	return serve(ctx, log, h, lns, func(s *http.Server, ln net.Listener) error {
		configure(s)
		return s.ServeTLS(ln, "", "")
	}, Shutdown{})
}

// NewClient returns an HTTP client for calls between samples. proxy decides
// the explicit-mode proxy per request (nil means http.ProxyFromEnvironment,
// i.e. HTTP_PROXY/NO_PROXY; note Go never proxies loopback hosts from the
// environment, which suits calls by service name). The client has no overall
// timeout: callers set one per call with a context, as the originals do.
func NewClient(proxy func(*http.Request) (*url.URL, error)) *http.Client {
	if proxy == nil {
		proxy = http.ProxyFromEnvironment
	}
	return &http.Client{
		Transport: &http.Transport{
			Proxy:               proxy,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConnsPerHost: 16,
			IdleConnTimeout:     90 * time.Second,
		},
		// Samples report redirects as they get them.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}
