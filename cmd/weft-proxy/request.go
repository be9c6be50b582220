package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// request is `weft-proxy request [--debug-port N] METHOD PATH [BODY]`,
// Istio's `pilot-agent request`: one call to the proxy's own admin port on
// 127.0.0.1 (loopback only, so only the pod's own containers reach it). The
// injected native sidecar's preStop hook runs `weft-proxy request POST
// drain_listeners?inboundonly&graceful`. The answer's body goes to stdout;
// a status of 400 or more, or no answer, exits 1.
func request(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("weft-proxy request", flag.ContinueOnError)
	fs.SetOutput(stderr)
	port := fs.Int("debug-port", 15000, "the proxy's admin port on 127.0.0.1")
	timeout := fs.Duration("timeout", 10*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: weft-proxy request [--debug-port N] METHOD PATH [BODY]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if fs.NArg() < 2 || fs.NArg() > 3 || *port < 1 || *port > 65535 {
		fs.Usage()
		return 2
	}
	method, path := strings.ToUpper(fs.Arg(0)), strings.TrimPrefix(fs.Arg(1), "/")
	var body io.Reader
	if fs.NArg() == 3 {
		body = strings.NewReader(fs.Arg(2))
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	url := "http://127.0.0.1:" + strconv.Itoa(*port) + "/" + path
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy request:", err)
		return 2
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		fmt.Fprintln(stderr, "weft-proxy request:", err)
		return 1
	}
	defer resp.Body.Close()
	if _, err := io.Copy(stdout, resp.Body); err != nil {
		fmt.Fprintln(stderr, "weft-proxy request: reading the answer:", err)
		return 1
	}
	if resp.StatusCode >= 400 {
		fmt.Fprintf(stderr, "weft-proxy request: %s %s: %s\n", method, url, resp.Status)
		return 1
	}
	return 0
}
