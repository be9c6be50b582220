package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/server"
)

func newControlPlaneCmd() *cobra.Command {
	var (
		opts     server.Options
		logLevel string
	)
	cmd := &cobra.Command{
		Use:   "control-plane",
		Short: "Run the control plane: watch a config directory and serve xDS to proxies",
		Long: `Run the standalone control plane.

It loads every *.yaml, *.yml and *.json file under --config-dir (Istio
resources, Kubernetes Services and Secrets, a MeshConfig), validates each file
on its own and watches the directory. A file that fails to load or validate
does not replace what was serving: its last good version keeps serving and the
error (file:line) is logged, exported as weft_config_errors and shown by
'weft get status'.

Proxies connect over ADS (state of the world or delta) to --xds-address and
auto-register their workload. The monitoring address serves /metrics and the
API used by 'weft apply', 'weft get', 'weft delete', 'weft proxy-status' and
'weft proxy-config'. Both listen on loopback by default: the xDS port is
plaintext.

Debug pages on the monitoring address:
` + debugHelp(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if opts.ConfigDir == "" {
				return fmt.Errorf("--config-dir is required")
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			opts.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			srv, err := server.New(opts)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.ConfigDir, "config-dir", "", "directory of Istio YAML to serve (watched)")
	f.StringVar(&opts.StateDir, "state-dir", "", "private state: CA keys, admin token, registrations (default <config-dir>.state)")
	f.StringVar(&opts.XDSAddress, "xds-address", "127.0.0.1:15010", "ADS (xDS) listen address, plaintext")
	f.StringVar(&opts.MonitoringAddress, "monitoring-address", "127.0.0.1:15014", "metrics and API listen address")
	f.DurationVar(&opts.Grace, "registration-grace", registry.DefaultGrace, "how long a disconnected proxy's workload stays registered")
	f.DurationVar(&opts.Debounce, "debounce", 100*time.Millisecond, "wait for more changes before pushing")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

// cpClient talks to the control plane's monitoring API.
type cpClient struct {
	base string
	http *http.Client
}

// addCPFlag registers --control-plane; the default comes from
// WEFT_CONTROL_PLANE, else 127.0.0.1:15014.
func addCPFlag(cmd *cobra.Command, addr *string) {
	def := os.Getenv("WEFT_CONTROL_PLANE")
	if def == "" {
		def = "127.0.0.1:15014"
	}
	cmd.Flags().StringVar(addr, "control-plane", def, "control plane monitoring address (env WEFT_CONTROL_PLANE)")
}

func newCPClient(addr string) *cpClient {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &cpClient{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 30 * time.Second}}
}

// apiError is a failed API call; its lines are the server's messages
// (file:line: …).
type apiError struct{ lines []string }

func (e *apiError) Error() string { return strings.Join(e.lines, "\n") }

// do calls the API; a JSON answer is decoded into out (when not nil), a
// raw one copied to out when out is an io.Writer.
func (c *cpClient) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("control plane at %s: %w", c.base, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return fmt.Errorf("control plane at %s: %w", c.base, err)
	}
	if resp.StatusCode/100 != 2 {
		var eb server.ErrorBody
		if json.Unmarshal(b, &eb) == nil && len(eb.Errors) > 0 {
			return &apiError{lines: eb.Errors}
		}
		return fmt.Errorf("control plane at %s: %s: %s", c.base, resp.Status, strings.TrimSpace(string(b)))
	}
	switch o := out.(type) {
	case nil:
		return nil
	case io.Writer:
		_, err := o.Write(b)
		return err
	default:
		return json.Unmarshal(b, out)
	}
}

// reportErr prints an API error's lines to stderr and turns it into exit
// status 1 (so the message is not printed twice).
func reportErr(cmd *cobra.Command, err error) error {
	if ae, ok := err.(*apiError); ok {
		for _, l := range ae.lines {
			fmt.Fprintln(cmd.ErrOrStderr(), l)
		}
		return exitError{1}
	}
	return err
}

func debugHelp() string {
	var b strings.Builder
	for _, e := range server.DebugEndpoints {
		fmt.Fprintf(&b, "  %-32s %s\n", e.Path, e.Help)
	}
	return strings.TrimRight(b.String(), "\n")
}
