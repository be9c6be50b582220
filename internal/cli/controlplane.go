package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane/apiauth"
	"github.com/weftmesh/weft/internal/controlplane/registry"
	"github.com/weftmesh/weft/internal/controlplane/server"
)

func newControlPlaneCmd() *cobra.Command {
	var (
		opts     server.Options
		logLevel string
		kf       kubeFlags
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

Proxies get certificates from the control plane's CA and connect over ADS
(state of the world or delta) with mutual TLS to --secure-address (Istio's
15012: xDS and the IstioCertificateService CA API on one port), then
auto-register their workload under their verified identity. Callers prove
who they are with a join token ('weft token create') or the certificate it
got them; node metadata that claims another namespace or service account is
refused. The CA's root is generated in the state directory on first start,
or comes from Istio's cacerts files (--ca-cert-dir). Plaintext xDS
(--xds-address) trusts whatever a proxy claims and is off unless asked for
(development, loopback only). The monitoring address serves /metrics and the
API used by 'weft apply', 'weft get', 'weft delete', 'weft proxy-status' and
'weft proxy-config'.

API writes and Secret reads need the admin token, which the control plane
keeps in <state-dir>/admin-token (mode 0600) and publishes for its own user in
$XDG_RUNTIME_DIR/weft/control-planes (else ~/.cache/weft/control-planes), so
weft apply/get/delete find it with no flags. Requests from web pages (foreign
Origin or Host) are refused; Secret data is redacted without the token.

Environment: ENABLE_TLS_ON_SIDECAR_INGRESS=true applies Sidecar ingress[].tls, as
istiod's flag of that name (default off).

Debug pages on the monitoring address:
` + debugHelp(),
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			opts.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			km, err := kf.setup(ctx, &opts)
			if err != nil {
				return err
			}
			if km == nil && opts.ConfigDir == "" {
				return fmt.Errorf("--config-dir or --kubeconfig is required")
			}
			if km != nil {
				defer km.close()
			}
			// istiod's feature flags, under their names and defaults.
			if v := os.Getenv("ENABLE_TLS_ON_SIDECAR_INGRESS"); v != "" {
				on, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("ENABLE_TLS_ON_SIDECAR_INGRESS=%q: %w", v, err)
				}
				opts.Features.TLSOnSidecarIngress = on
			}
			srv, err := server.New(opts)
			if err != nil {
				return err
			}
			if km != nil {
				go km.run(ctx, srv)
			}
			return srv.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.ConfigDir, "config-dir", "", "directory of Istio YAML to serve (watched)")
	f.StringVar(&opts.StateDir, "state-dir", "", "private state: CA keys, admin token, registrations (default <config-dir>.state)")
	f.StringVar(&opts.SecureAddress, "secure-address", "127.0.0.1:15012", "xDS over mutual TLS and the CA API (IstioCertificateService) listen address")
	f.StringVar(&opts.XDSAddress, "xds-address", "", "plaintext xDS listen address, e.g. 127.0.0.1:15010 (development only: trusts what proxies claim; off by default)")
	f.StringVar(&opts.CA.PluginDir, "ca-cert-dir", "", "plug-in CA: directory with Istio's cacerts files (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem)")
	f.DurationVar(&opts.CA.CertTTL, "workload-cert-ttl", 24*time.Hour, "workload certificate lifetime (proxies renew at half of it)")
	f.StringSliceVar(&opts.CA.ServingHosts, "serving-hosts", nil, "DNS names and IPs in the secure port's certificate (default localhost, 127.0.0.1, the listen host and the host name)")
	f.BoolVar(&opts.CA.RotateRoot, "rotate-root", false, "start a root CA rotation: the new root is distributed in the trust bundle for --root-bundle-grace, then signs; the old root stays trusted until its certificates expire")
	f.DurationVar(&opts.CA.BundleGrace, "root-bundle-grace", 0, "how long a new root is distributed before it signs (default: the workload cert TTL)")
	f.StringVar(&opts.MonitoringAddress, "monitoring-address", "127.0.0.1:15014", "metrics and API listen address")
	f.StringSliceVar(&opts.AllowedHosts, "allowed-hosts", nil, "host names accepted in the API's Host header besides IP addresses, localhost and the listen host (DNS-rebinding guard)")
	f.DurationVar(&opts.Grace, "registration-grace", registry.DefaultGrace, "how long a disconnected proxy's workload stays registered")
	f.DurationVar(&opts.Debounce, "debounce", 100*time.Millisecond, "wait for more changes before pushing")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	kf.register(f)
	return cmd
}

// cpClient talks to the control plane's monitoring API.
type cpClient struct {
	base  string
	token string // admin token, "" = none found
	err   error  // from finding the token; returned by every call
	http  *http.Client
}

// addCPFlag registers --control-plane (default from WEFT_CONTROL_PLANE,
// else 127.0.0.1:15014) and the admin token flags.
func addCPFlag(cmd *cobra.Command, addr *string) {
	def := os.Getenv("WEFT_CONTROL_PLANE")
	if def == "" {
		def = "127.0.0.1:15014"
	}
	cmd.Flags().StringVar(addr, "control-plane", def, "control plane monitoring address (env WEFT_CONTROL_PLANE)")
	cmd.Flags().String("token", "", "admin token for writes and Secret reads (env WEFT_TOKEN; default: found for a local control plane)")
	cmd.Flags().String("token-file", "", "file holding the admin token, e.g. <state-dir>/admin-token (env WEFT_TOKEN_FILE)")
}

// newCPClient builds a client for the command's --control-plane. The admin
// token comes from --token, WEFT_TOKEN, --token-file, WEFT_TOKEN_FILE, or
// else the file a control plane run by this user published for that
// address (apiauth); a problem with an explicit source fails every call.
func newCPClient(cmd *cobra.Command, addr string) *cpClient {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	c := &cpClient{base: strings.TrimRight(base, "/"), http: &http.Client{Timeout: 30 * time.Second}}
	flag := func(name string) string {
		if f := cmd.Flags().Lookup(name); f != nil {
			return f.Value.String()
		}
		return ""
	}
	switch file := cmp.Or(flag("token-file"), os.Getenv("WEFT_TOKEN_FILE")); {
	case flag("token") != "":
		c.token = flag("token")
	case os.Getenv("WEFT_TOKEN") != "":
		c.token = os.Getenv("WEFT_TOKEN")
	case file != "":
		c.token, c.err = apiauth.ReadFile(file)
		if c.err != nil {
			c.err = fmt.Errorf("admin token: %w", c.err)
		}
	default:
		u, err := url.Parse(c.base)
		if err != nil {
			c.err = fmt.Errorf("--control-plane %q: %w", addr, err)
			return c
		}
		dir, err := apiauth.DefaultDir()
		if err != nil {
			return c // no token: reads still work, redacted
		}
		hostport := u.Host
		if u.Port() == "" {
			hostport = net.JoinHostPort(u.Hostname(), "80")
		}
		tok, err := apiauth.Discover(dir, hostport)
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "warning: ignoring the published admin token: %v\n", err)
		}
		c.token = tok
	}
	return c
}

// apiError is a failed API call; its lines are the server's messages
// (file:line: …).
type apiError struct{ lines []string }

func (e *apiError) Error() string { return strings.Join(e.lines, "\n") }

// do calls the API; a JSON answer is decoded into out (when not nil), a
// raw one copied to out when out is an io.Writer.
func (c *cpClient) do(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	if c.err != nil {
		return c.err
	}
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
	if body != nil {
		req.Header.Set("Content-Type", "application/yaml")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
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
