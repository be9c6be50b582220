// Command weft-proxy is Weft's data plane: the sidecar and gateway proxy.
// It keeps lean imports: no client-go, no Istio API types (see internal/archtest).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/weftmesh/weft/internal/proxy/bootstrap"
	"github.com/weftmesh/weft/internal/proxy/capture"
	"github.com/weftmesh/weft/internal/proxy/memory"
	"github.com/weftmesh/weft/internal/proxy/memtrim"
	"github.com/weftmesh/weft/internal/version"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: weft-proxy version|sidecar|router|iptables|request [flags]")
		return 2
	}
	switch args[0] {
	case "version", "--version":
		fmt.Fprintln(stdout, version.String("weft-proxy"))
		return 0
	case "iptables":
		return capture.Main(args[1:], stdout, stderr)
	case "request":
		return request(args[1:], stdout, stderr)
	case "sidecar", "router":
	default:
		fmt.Fprintf(stderr, "weft-proxy: unknown command %q\nusage: weft-proxy version|sidecar|router|iptables|request [flags]\n", args[0])
		return 2
	}
	cfg, err := bootstrap.Parse(args[0], args[1:], os.Getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy:", err)
		return 2
	}
	level := new(slog.LevelVar)
	level.Set(cfg.LogLevel)
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	// The memory policy is the process's: set here, not by bootstrap
	// (tests run proxies in their own process).
	memory.Apply(cfg.Memory)
	memory.RunTarget(ctx, cfg.Memory.Target, cfg.Memory.MemoryLimit)
	log.Info("go memory policy", "policy", cfg.Memory.String())
	p, err := bootstrap.Start(ctx, cfg, log, level)
	if err != nil {
		log.Error("start failed", "err", err)
		return 1
	}
	go memtrim.Run(ctx, trimInterval(log), memtrim.DefaultThreshold, p.XDS.Ready())
	// A second signal during the drain stops at once.
	go func() {
		select {
		case <-ctx.Done():
		case <-p.Done():
			return
		}
		stop()
		again := make(chan os.Signal, 1)
		signal.Notify(again, syscall.SIGTERM, os.Interrupt)
		defer signal.Stop(again)
		select {
		case <-again:
			p.StopNow()
		case <-p.Done():
		}
	}()
	p.Wait()
	return 0
}

// trimInterval is how often the proxy returns idle heap to the system:
// WEFT_MEMORY_TRIM_INTERVAL (a duration, 0 turns it off), default 1 s.
func trimInterval(log *slog.Logger) time.Duration {
	v := os.Getenv("WEFT_MEMORY_TRIM_INTERVAL")
	if v == "" {
		return time.Second
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		log.Warn("WEFT_MEMORY_TRIM_INTERVAL is not a duration; using 1s", "value", v)
		return time.Second
	}
	return d
}
