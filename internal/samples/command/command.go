// Package command is `weft sample`: Istio's sample apps (internal/samples)
// as commands, shared by the weft CLI and by the small multi-call
// weft-sample binary that the sample images run. Started as `curl` or
// `sleep` (argv[0], a symlink in the curl image), that binary behaves as
// those tools do for Istio's tasks (`kubectl exec deploy/curl -- curl …`,
// the curl manifest's `/bin/sleep infinity`).
//
// Where Istio's sample images read environment variables (productpage's
// DETAILS_HOSTNAME, REVIEWS_SERVICE_PORT, SERVICES_DOMAIN …; reviews'
// RATINGS_HOSTNAME …), the commands read the same ones when the matching
// flag is not given, so a pod finds its peers by service name as Istio's do.
package command

import (
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/samples"
	"github.com/weftmesh/weft/internal/samples/bookinfo"
	"github.com/weftmesh/weft/internal/samples/curl"
	"github.com/weftmesh/weft/internal/samples/extauthz"
	"github.com/weftmesh/weft/internal/samples/external"
	"github.com/weftmesh/weft/internal/samples/helloworld"
	"github.com/weftmesh/weft/internal/samples/httpbin"
	"github.com/weftmesh/weft/internal/samples/httpsproxy"
	"github.com/weftmesh/weft/internal/samples/load"
	"github.com/weftmesh/weft/internal/samples/nc"
	"github.com/weftmesh/weft/internal/samples/tcpecho"
)

// New returns the `sample` command with every app as a subcommand.
func New() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sample NAME",
		Short: "Run a built-in sample app (httpbin, bookinfo services, tcp-echo, curl …)",
		Long: `Run one of Istio's sample apps, rebuilt in Go, as a local process.

Servers listen on --listen (repeatable where noted), log one line per
request to stderr and stop on SIGINT/SIGTERM. Outbound calls go to services
by name (http://reviews:9080) and honour HTTP_PROXY/NO_PROXY, so in explicit
mode point HTTP_PROXY at the sidecar's proxy port.`,
	}
	cmd.AddCommand(
		sampleHTTPbinCmd(),
		sampleProductPageCmd(),
		sampleDetailsCmd(),
		sampleReviewsCmd(),
		sampleRatingsCmd(),
		sampleHelloworldCmd(),
		sampleTCPEchoCmd(),
		sampleExtAuthzCmd(),
		sampleExternalCmd(),
		sampleHTTPSProxyCmd(),
		sampleCurlCmd(),
		sampleNcCmd(),
		sampleLoadCmd(),
		sampleSleepCmd(),
	)
	return cmd
}

// sampleLogger logs text lines to the command's stderr, tagged with the app.
func sampleLogger(cmd *cobra.Command, app, version string) *slog.Logger {
	l := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), nil)).With("app", app)
	if version != "" {
		l = l.With("version", version)
	}
	return l
}

// signalContext ends on SIGINT or SIGTERM.
func signalContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	parent := cmd.Context()
	if parent == nil {
		parent = context.Background()
	}
	return signal.NotifyContext(parent, os.Interrupt, syscall.SIGTERM)
}

// serveSample runs an HTTP sample with request logging until a signal,
// then stops as sd says (a second signal ends its delay).
func serveSample(cmd *cobra.Command, log *slog.Logger, h http.Handler, listen []string, sd *serverFlags) error {
	ctx, cancel := signalContext(cmd)
	defer cancel()
	if sd.startDelay > 0 {
		log.Info("starting late: not listening yet", "delay", sd.startDelay)
		select {
		case <-time.After(sd.startDelay):
		case <-ctx.Done():
			return nil
		}
	}
	lns, err := samples.Listen(listen)
	if err != nil {
		return err
	}
	s := sd.Shutdown
	var stop func()
	s.Abort, stop = secondSignal(ctx)
	defer stop()
	return samples.ServeHTTPUntil(ctx, log, samples.LogRequests(log, h), lns, s)
}

// secondSignal's channel is closed by a SIGINT or SIGTERM that comes after
// ctx ended, until stop is called.
func secondSignal(ctx context.Context) (abort <-chan struct{}, stop func()) {
	out, quit := make(chan struct{}), make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
		case <-quit:
			return
		}
		again := make(chan os.Signal, 1)
		signal.Notify(again, os.Interrupt, syscall.SIGTERM)
		defer signal.Stop(again)
		select {
		case <-again:
			close(out)
		case <-quit:
		}
	}()
	return out, func() { close(quit) }
}

// serverFlags are an HTTP sample server's start and stop flags.
type serverFlags struct {
	samples.Shutdown
	// startDelay: how long the app waits before it listens, as a slow app
	// (a JVM, a cache warm-up) would (the node tests' readiness checks).
	startDelay time.Duration
}

// shutdownFlags adds --start-delay, --shutdown-delay and --shutdown-timeout
// to a server.
func shutdownFlags(cmd *cobra.Command) *serverFlags {
	sd := &serverFlags{}
	cmd.Flags().DurationVar(&sd.startDelay, "start-delay", 0, "wait this long before listening (a slow-starting app)")
	cmd.Flags().DurationVar(&sd.Delay, "shutdown-delay", 0, "keep serving this long after SIGTERM (with Connection: close) while the endpoint is withdrawn from clients, then stop accepting; the images use 5s")
	cmd.Flags().DurationVar(&sd.Timeout, "shutdown-timeout", samples.DefaultShutdownTimeout, "how long requests in flight may finish once the server stops accepting")
	return sd
}

func sampleHTTPbinCmd() *cobra.Command {
	var sd *serverFlags
	var listen []string
	var version string
	var classic bool
	cmd := &cobra.Command{
		Use:   "httpbin",
		Short: "httpbin: /get /headers /ip /status/{codes} /delay/{s} /anything /response-headers /bytes/{n}",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := sampleLogger(cmd, "httpbin", version)
			return serveSample(cmd, log, httpbin.New(httpbin.Config{Version: version, Classic: classic}), listen, sd)
		},
	}
	sd = shutdownFlags(cmd)
	cmd.Flags().StringArrayVar(&listen, "listen", []string{"127.0.0.1:8080"}, "listen address (repeatable)")
	cmd.Flags().StringVar(&version, "version", "v1", "version label, sent back in the "+httpbin.VersionHeader+" header")
	cmd.Flags().BoolVar(&classic, "classic", false, "render headers as single strings like the Python httpbin (default: go-httpbin arrays)")
	return cmd
}

func sampleProductPageCmd() *cobra.Command {
	var sd *serverFlags
	var listen []string
	var cfg bookinfo.ProductPageConfig
	cmd := &cobra.Command{
		Use:   "productpage",
		Short: "Bookinfo productpage: /productpage, /login, /logout, /api/v1/products…, /health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := sampleLogger(cmd, "productpage", "v1")
			cfg.Log = log
			// Istio's productpage.py takes its peers from the environment.
			for flag, dst := range map[string]*string{"details": &cfg.DetailsURL, "reviews": &cfg.ReviewsURL, "ratings": &cfg.RatingsURL} {
				if !cmd.Flags().Changed(flag + "-url") {
					*dst = istioURL(os.Getenv, flag)
				}
			}
			return serveSample(cmd, log, bookinfo.NewProductPage(cfg), listen, sd)
		},
	}
	sd = shutdownFlags(cmd)
	cmd.Flags().StringArrayVar(&listen, "listen", []string{"127.0.0.1:9080"}, "listen address (repeatable)")
	cmd.Flags().StringVar(&cfg.DetailsURL, "details-url", bookinfo.DefaultDetailsURL, "details service URL (default: from DETAILS_HOSTNAME, DETAILS_SERVICE_PORT and SERVICES_DOMAIN as Istio's image reads them)")
	cmd.Flags().StringVar(&cfg.ReviewsURL, "reviews-url", bookinfo.DefaultReviewsURL, "reviews service URL (default: from REVIEWS_HOSTNAME, REVIEWS_SERVICE_PORT, SERVICES_DOMAIN)")
	cmd.Flags().StringVar(&cfg.RatingsURL, "ratings-url", bookinfo.DefaultRatingsURL, "ratings service URL, API only (default: from RATINGS_HOSTNAME, RATINGS_SERVICE_PORT, SERVICES_DOMAIN)")
	return cmd
}

func sampleDetailsCmd() *cobra.Command {
	var sd *serverFlags
	var listen []string
	cmd := &cobra.Command{
		Use:   "details",
		Short: "Bookinfo details: /details/{id}, /health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveSample(cmd, sampleLogger(cmd, "details", "v1"), bookinfo.NewDetails(), listen, sd)
		},
	}
	sd = shutdownFlags(cmd)
	cmd.Flags().StringArrayVar(&listen, "listen", []string{"127.0.0.1:9080"}, "listen address (repeatable)")
	return cmd
}

func sampleRatingsCmd() *cobra.Command {
	var sd *serverFlags
	var listen []string
	cmd := &cobra.Command{
		Use:   "ratings",
		Short: "Bookinfo ratings: /ratings/{id}, /health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serveSample(cmd, sampleLogger(cmd, "ratings", "v1"), bookinfo.NewRatings(), listen, sd)
		},
	}
	sd = shutdownFlags(cmd)
	cmd.Flags().StringArrayVar(&listen, "listen", []string{"127.0.0.1:9080"}, "listen address (repeatable)")
	return cmd
}

func sampleReviewsCmd() *cobra.Command {
	var sd *serverFlags
	var listen []string
	var cfg bookinfo.ReviewsConfig
	var podNameEnv string
	cmd := &cobra.Command{
		Use:   "reviews",
		Short: "Bookinfo reviews: /reviews/{id}, /health (v1 no stars, v2 black, v3 red)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("ratings-url") {
				cfg.RatingsURL = istioURL(os.Getenv, "ratings") // as Istio's reviews reads it
			}
			if podNameEnv != "" && cfg.PodName == "" {
				cfg.PodName = os.Getenv(podNameEnv)
			}
			log := sampleLogger(cmd, "reviews", cfg.Version)
			cfg.Log = log
			h, err := bookinfo.NewReviews(cfg)
			if err != nil {
				return err
			}
			return serveSample(cmd, log, h, listen, sd)
		},
	}
	sd = shutdownFlags(cmd)
	cmd.Flags().StringArrayVar(&listen, "listen", []string{"127.0.0.1:9080"}, "listen address (repeatable)")
	cmd.Flags().StringVar(&cfg.Version, "version", "v1", "v1 (no ratings), v2 (black stars, 10s ratings timeout) or v3 (red stars, 2.5s)")
	cmd.Flags().StringVar(&cfg.RatingsURL, "ratings-url", bookinfo.DefaultRatingsURL, "ratings service URL (default: from RATINGS_HOSTNAME, RATINGS_SERVICE_PORT, SERVICES_DOMAIN as Istio's reviews)")
	cmd.Flags().StringVar(&cfg.PodName, "pod-name", "", `name shown after "Reviews served by:" (default reviews-<version>-<random>)`)
	cmd.Flags().StringVar(&podNameEnv, "pod-name-env", "", "take --pod-name from this environment variable when set (the images use HOSTNAME, the pod's name, as Istio's reviews does)")
	return cmd
}

func sampleHelloworldCmd() *cobra.Command {
	var sd *serverFlags
	var listen []string
	var version, instance string
	cmd := &cobra.Command{
		Use:   "helloworld",
		Short: "helloworld: GET /hello",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if instance == "" {
				instance = "helloworld-" + version
			}
			return serveSample(cmd, sampleLogger(cmd, "helloworld", version), helloworld.New(version, instance), listen, sd)
		},
	}
	sd = shutdownFlags(cmd)
	cmd.Flags().StringArrayVar(&listen, "listen", []string{"127.0.0.1:5000"}, "listen address (repeatable)")
	cmd.Flags().StringVar(&version, "version", "v1", "version reported")
	cmd.Flags().StringVar(&instance, "instance", "", "instance name reported (default helloworld-<version>)")
	return cmd
}

func sampleTCPEchoCmd() *cobra.Command {
	var listen []string
	var prefix string
	cmd := &cobra.Command{
		Use:   "tcp-echo",
		Short: `tcp-echo: answers each line with "<prefix> <line>"`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			lns, err := samples.Listen(listen)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			s := &tcpecho.Server{Prefix: prefix, Log: sampleLogger(cmd, "tcp-echo", "")}
			return s.Serve(ctx, lns)
		},
	}
	cmd.Flags().StringArrayVar(&listen, "listen", []string{"127.0.0.1:9000", "127.0.0.1:9001"}, "listen address (repeatable)")
	cmd.Flags().StringVar(&prefix, "prefix", "one", "prefix of every echoed line")
	return cmd
}

func sampleExtAuthzCmd() *cobra.Command {
	var httpAddrs, grpcAddrs []string
	cmd := &cobra.Command{
		Use:   "ext-authz",
		Short: `ext-authz: an external authorizer that allows requests with "x-ext-authz: allow" (HTTP and gRPC)`,
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := sampleLogger(cmd, "ext-authz", "")
			hl, err := samples.Listen(httpAddrs)
			if err != nil {
				return err
			}
			gl, err := samples.Listen(grpcAddrs)
			if err != nil {
				for _, l := range hl {
					l.Close()
				}
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			gs := grpc.NewServer()
			authv3.RegisterAuthorizationServer(gs, &extauthz.GRPC{Log: log})
			for _, l := range gl {
				log.Info("listening", "address", l.Addr().String(), "protocol", "grpc")
				go gs.Serve(l)
			}
			defer gs.Stop()
			return samples.ServeHTTP(ctx, log, extauthz.HTTP{Log: log}, hl)
		},
	}
	cmd.Flags().StringArrayVar(&httpAddrs, "listen-http", []string{"127.0.0.1:8000"}, "HTTP check address (repeatable)")
	cmd.Flags().StringArrayVar(&grpcAddrs, "listen-grpc", []string{"127.0.0.1:9000"}, "gRPC check address (repeatable)")
	return cmd
}

func sampleExternalCmd() *cobra.Command {
	var httpAddrs, httpsAddrs, hosts []string
	var caOut, clientCertOut, clientKeyOut string
	var redirect, mutual bool
	cmd := &cobra.Command{
		Use:   "external",
		Short: "A stand-in for a site outside the mesh, over HTTP and HTTPS (own CA)",
		Long: `A stand-in for an external site (edition.cnn.com, httpbin.org …) over
HTTP and HTTPS. The HTTPS certificate covers every --host and comes from a
throw-away CA written to --ca-out. httpbin paths (/headers, /delay/5 …)
answer like httpbin.org; other paths answer 200 with the host and the
request headers. --redirect-http makes plain HTTP answer 301 to https, as
edition.cnn.com does; --mutual requires client certificates from the same CA
(write one with --client-cert-out/--client-key-out).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(httpAddrs) == 0 && len(httpsAddrs) == 0 {
				return errors.New("give --http and/or --https")
			}
			log := sampleLogger(cmd, "external", "")
			h := samples.LogRequests(log, external.Handler(external.Config{Hosts: hosts, RedirectHTTP: redirect, Log: log}))
			ca, err := external.NewCA("weft external sample")
			if err != nil {
				return err
			}
			if caOut != "" {
				if err := os.WriteFile(caOut, ca.CertPEM, 0o644); err != nil {
					return fmt.Errorf("writing CA: %w", err)
				}
			}
			if clientCertOut != "" {
				cc, err := ca.Issue([]string{"client.example.com"})
				if err != nil {
					return err
				}
				certPEM, keyPEM, err := external.KeyPEM(cc)
				if err != nil {
					return err
				}
				if clientKeyOut == "" {
					certPEM = append(certPEM, keyPEM...)
				} else if err := os.WriteFile(clientKeyOut, keyPEM, 0o600); err != nil {
					return fmt.Errorf("writing client key: %w", err)
				}
				if err := os.WriteFile(clientCertOut, certPEM, 0o600); err != nil {
					return fmt.Errorf("writing client certificate: %w", err)
				}
			}
			cert, err := ca.Issue(hosts)
			if err != nil {
				return err
			}
			var clientCAs *x509.CertPool
			if mutual {
				clientCAs = x509.NewCertPool()
				clientCAs.AppendCertsFromPEM(ca.CertPEM)
			}
			plain, err := samples.Listen(httpAddrs)
			if err != nil && len(httpAddrs) > 0 {
				return err
			}
			secure, err := samples.Listen(httpsAddrs)
			if err != nil && len(httpsAddrs) > 0 {
				for _, l := range plain {
					l.Close()
				}
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			// Serve what was asked for; the first to end (with --https
			// alone, only that one) ends the rest.
			errc := make(chan error, 2)
			n := 0
			if len(plain) > 0 {
				n++
				go func() { errc <- samples.ServeHTTP(ctx, log, h, plain) }()
			}
			if len(secure) > 0 {
				n++
				go func() {
					errc <- samples.ServeTLS(ctx, log, h, secure, func(s *http.Server) {
						s.TLSConfig = external.TLSConfig(cert, clientCAs)
					})
				}()
			}
			err1 := <-errc
			cancel()
			if n == 2 {
				err1 = errors.Join(err1, <-errc)
			}
			return err1
		},
	}
	cmd.Flags().StringArrayVar(&httpAddrs, "http", nil, "plain HTTP listen address (repeatable)")
	cmd.Flags().StringArrayVar(&httpsAddrs, "https", nil, "HTTPS listen address (repeatable)")
	cmd.Flags().StringArrayVar(&hosts, "host", []string{"edition.cnn.com"}, "host name the site serves (repeatable)")
	cmd.Flags().StringVar(&caOut, "ca-out", "", "write the CA certificate (PEM) to this file")
	cmd.Flags().BoolVar(&redirect, "redirect-http", false, "answer plain HTTP with 301 to https://host/path")
	cmd.Flags().BoolVar(&mutual, "mutual", false, "require client certificates issued by the sample CA")
	cmd.Flags().StringVar(&clientCertOut, "client-cert-out", "", "write a client certificate from the sample CA here")
	cmd.Flags().StringVar(&clientKeyOut, "client-key-out", "", "write the client certificate's key here (default: with the certificate)")
	return cmd
}

func sampleHTTPSProxyCmd() *cobra.Command {
	var listen, overrides []string
	var ports []int
	cmd := &cobra.Command{
		Use:   "https-proxy",
		Short: "An HTTPS proxy outside the mesh (CONNECT tunnels, like squid in Istio's egress-via-proxy task)",
		Long: `A stand-in for a company's HTTPS proxy outside the mesh: apps send
CONNECT host:port and get a TCP tunnel to the site, so TLS runs end to end.
Only CONNECT to --port (default 443) is allowed; each tunnel is logged
(method, authority, status, bytes), like squid's access log. Names in
--dns-override resolve to fixed IPs (there is no internet here).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			override := map[string]string{}
			for _, kv := range overrides {
				for _, e := range strings.Split(kv, ",") {
					h, ip, ok := strings.Cut(e, "=")
					if !ok || net.ParseIP(ip) == nil {
						return fmt.Errorf("--dns-override %q: want host=ip", e)
					}
					override[strings.ToLower(h)] = ip
				}
			}
			lns, err := samples.Listen(listen)
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			log := sampleLogger(cmd, "https-proxy", "")
			return samples.ServeHTTP(ctx, log, &httpsproxy.Proxy{Ports: ports, Override: override, Log: log}, lns)
		},
	}
	cmd.Flags().StringArrayVar(&listen, "listen", []string{"127.0.0.1:3128"}, "listen address (repeatable)")
	cmd.Flags().IntSliceVar(&ports, "port", []int{443}, "destination ports CONNECT may open")
	cmd.Flags().StringArrayVar(&overrides, "dns-override", nil, "resolve names to fixed IPs: host=ip,host=ip (repeatable)")
	return cmd
}

func sampleCurlCmd() *cobra.Command {
	var o curl.Options
	cmd := &cobra.Command{
		Use:   "curl URL",
		Short: "A small curl (flags, output and exit codes like curl's) for sleep/curl-style clients",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.URL = args[0]
			ctx, cancel := signalContext(cmd)
			defer cancel()
			if code := curl.Run(ctx, o, cmd.OutOrStdout(), cmd.ErrOrStderr()); code != 0 {
				return ExitError{Code: code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.Headers, "header", "H", nil, `request header "Name: value" (repeatable)`)
	f.StringVarP(&o.Method, "request", "X", "", "request method")
	f.StringArrayVarP(&o.Data, "data", "d", nil, "request body (POST; @file reads a file)")
	f.StringVarP(&o.Proxy, "proxy", "x", "", "HTTP proxy host:port (default: HTTP_PROXY/HTTPS_PROXY)")
	f.BoolVarP(&o.Silent, "silent", "s", false, "no error messages")
	f.BoolVarP(&o.ShowError, "show-error", "S", false, "show errors even with -s")
	f.StringVarP(&o.Output, "output", "o", "", "write the body to this file")
	f.StringVarP(&o.WriteOut, "write-out", "w", "", `print this after the transfer, e.g. "%{http_code}\n"`)
	f.BoolVarP(&o.Head, "head", "I", false, "HEAD request, print the headers")
	f.BoolVarP(&o.Include, "include", "i", false, "print the response headers before the body")
	f.StringVarP(&o.DumpHeader, "dump-header", "D", "", `write the headers to this file ("-" stdout)`)
	f.BoolVarP(&o.Location, "location", "L", false, "follow redirects")
	f.VarP((*seconds)(&o.MaxTime), "max-time", "m", "overall time limit: seconds as curl takes them (5, 0.5) or a duration (5s)")
	f.Var((*seconds)(&o.ConnectTimeout), "connect-timeout", "connect time limit (seconds or a duration)")
	f.BoolVarP(&o.Fail, "fail", "f", false, "exit 22 on HTTP status 400 or above, without the body")
	f.BoolVarP(&o.Insecure, "insecure", "k", false, "do not verify the server certificate")
	f.StringVar(&o.CACert, "cacert", "", "CA certificates (PEM) to verify the server")
	f.StringVar(&o.Cert, "cert", "", "client certificate (PEM)")
	f.StringVar(&o.Key, "key", "", "client key (PEM)")
	f.StringVarP(&o.Cookie, "cookie", "b", "", `cookies to send: "k=v; k2=v2" or a cookie file`)
	f.StringVarP(&o.CookieJar, "cookie-jar", "c", "", "write received cookies to this file")
	f.StringArrayVar(&o.Resolve, "resolve", nil, "host:port:addr to dial addr for host:port (repeatable)")
	return cmd
}

func sampleLoadCmd() *cobra.Command {
	var o load.Options
	var headers []string
	cmd := &cobra.Command{
		Use:   "load URL",
		Short: "Send load like `fortio load` (-c connections, --qps, -n requests) and print fortio's Code lines",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.URL = args[0]
			o.Headers = http.Header{}
			for _, h := range headers {
				k, v, ok := strings.Cut(h, ":")
				if !ok {
					return fmt.Errorf("header %q: want Name: value", h)
				}
				if strings.EqualFold(strings.TrimSpace(k), "Host") {
					o.Host = strings.TrimSpace(v)
					continue
				}
				o.Headers.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			r, err := load.Run(ctx, o)
			if err != nil {
				return err
			}
			r.Print(cmd.OutOrStdout())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVarP(&o.Connections, "connections", "c", 4, "connections (each sends one request at a time)")
	f.Float64Var(&o.QPS, "qps", 8, "total requests per second; 0 = as fast as possible")
	f.IntVarP(&o.Requests, "requests", "n", 0, "requests in total (0: run for -t)")
	f.DurationVarP(&o.Duration, "time", "t", 5*time.Second, "how long to run when -n is 0")
	f.StringArrayVarP(&headers, "header", "H", nil, `request header "Name: value" (repeatable)`)
	f.StringVarP(&o.Proxy, "proxy", "x", "", "HTTP proxy host:port (default: HTTP_PROXY)")
	return cmd
}

// seconds is a duration flag that also takes curl's plain seconds.
type seconds time.Duration

func (s *seconds) String() string { return time.Duration(*s).String() }
func (s *seconds) Type() string   { return "seconds" }
func (s *seconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		if f < 0 {
			return fmt.Errorf("negative time %q", v)
		}
		*s = seconds(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return fmt.Errorf("bad time %q: want seconds (5, 0.5) or a duration (5s)", v)
	}
	*s = seconds(d)
	return nil
}

func sampleNcCmd() *cobra.Command {
	var o nc.Options
	cmd := &cobra.Command{
		Use:   "nc HOST:PORT",
		Short: "A small netcat: stdin to a TCP connection, the connection to stdout (CONNECT via --proxy)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			o.Address = args[0]
			if _, _, err := net.SplitHostPort(o.Address); err != nil {
				return fmt.Errorf("address %q: %w", o.Address, err)
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			var in io.Reader = cmd.InOrStdin()
			if err := nc.Run(ctx, o, in, cmd.OutOrStdout()); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), "nc:", err)
				return ExitError{Code: 1}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.Proxy, "proxy", "x", "", "HTTP proxy host:port to CONNECT through")
	cmd.Flags().DurationVarP(&o.Timeout, "wait", "w", 10*time.Second, "connect timeout")
	return cmd
}
