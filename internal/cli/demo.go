package cli

import (
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/examples"
	"github.com/weftmesh/weft/internal/demo"
)

func newDemoCmd() *cobra.Command {
	var (
		dir, ingressIP    string
		external, capture bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a whole mesh on this machine: control plane, Bookinfo, httpbin, tcp-echo, gateways",
		Long: `demo starts the control plane on a fresh config directory seeded from the shipped
examples, every sample app with its own sidecar (explicit mode: no root needed), and the
ingress gateway at http://127.0.0.1:8080. It stays up until interrupted, then stops
everything. weft apply/get/delete talk to it with no extra flags.

The demo supervises its processes: one that dies (the control plane, a proxy or
an app) is reported here and started again with backoff while the rest keep
running; proxies keep serving their last config while the control plane is away.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			seedFS, err := fs.Sub(examples.Base, ".")
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: slog.LevelWarn}))
			out := cmd.OutOrStdout()
			var outMu sync.Mutex
			report := func(msg string) {
				outMu.Lock()
				defer outMu.Unlock()
				fmt.Fprintf(out, "%s  %s\n", time.Now().Format("15:04:05"), msg)
			}
			fmt.Fprintln(out, "Starting the Weft demo mesh …")
			m, err := demo.Start(ctx, demo.Options{ConfigDir: dir, Seed: seedFS, IngressIP: ingressIP, External: external, Capture: capture, Log: log, Report: report})
			if err != nil {
				return err
			}
			defer m.Stop()
			outMu.Lock()
			m.PrintSummary(out)
			outMu.Unlock()
			<-ctx.Done()
			outMu.Lock()
			defer outMu.Unlock()
			fmt.Fprintln(out, "\nStopping …")
			if r := m.Restarts(); len(r) > 0 {
				fmt.Fprintf(out, "Restarted while running: %s\n", strings.Join(r, ", "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "config-dir", "", "config directory (default: a fresh temp dir seeded from examples/)")
	cmd.Flags().StringVar(&ingressIP, "ingress-ip", "127.0.0.1", "address the ingress gateway listens on")
	cmd.Flags().BoolVar(&capture, "capture", false, "root on Linux: run each workload in its own network namespace with iptables capture (apps call http://reviews:9080 with no proxy settings)")
	cmd.Flags().BoolVar(&external, "external", os.Geteuid() == 0, "start the stand-in external sites (edition.cnn.com and *.wikipedia.org on 127.0.20.1/.3/.4, a client-certificate site on 127.0.20.2; ports 80/443, needs root)")
	return cmd
}
