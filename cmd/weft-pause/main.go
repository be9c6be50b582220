// Command weft-pause is the pod sandbox's pause process, Weft's own stand-in
// for registry.k8s.io/pause: it holds the pod's namespaces open, reaps
// orphaned children when it runs as PID 1, and exits on SIGINT or SIGTERM.
// It imports nothing but the standard library so the image stays tiny.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && (os.Args[1] == "-v" || os.Args[1] == "version") {
		fmt.Println("weft-pause")
		return
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			reap()
			continue
		}
		os.Exit(0)
	}
}

// reap collects every exited child (processes re-parented to PID 1 in the
// pod's PID namespace), as the Kubernetes pause container does.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
