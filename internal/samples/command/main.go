package command

import (
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// ExitError carries a process exit code out of a command without printing
// anything more (curl's 7, 22 …).
type ExitError struct{ Code int }

func (e ExitError) Error() string { return fmt.Sprintf("exit status %d", e.Code) }

// Main runs a sample as a program and returns its exit code. argv0 picks
// the tool: "curl" and "sleep" (by base name) run that sample directly,
// anything else takes the sample's name as the first argument
// (`weft-sample productpage --listen=:9080`).
func Main(argv0 string, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	switch base := filepath.Base(argv0); base {
	case "curl", "sleep":
		args = append([]string{base}, args...)
	}
	root := New()
	root.Use = filepath.Base(argv0)
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.Execute(); err != nil {
		var ee ExitError
		if errors.As(err, &ee) {
			return ee.Code
		}
		fmt.Fprintf(stderr, "%s: %v\n", root.Use, err)
		return 1
	}
	return 0
}

func sampleSleepCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "sleep DURATION",
		Short: `Wait for DURATION ("infinity", seconds, or 5m/1h/2d as sleep takes them), or until SIGINT/SIGTERM`,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			d, forever, err := parseSleep(args[0])
			if err != nil {
				return err
			}
			ctx, cancel := signalContext(cmd)
			defer cancel()
			if forever {
				<-ctx.Done()
				return nil
			}
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			return nil
		},
	}
}

// parseSleep reads coreutils sleep's operand: a number with an optional
// s/m/h/d suffix, or "infinity".
func parseSleep(s string) (d time.Duration, forever bool, err error) {
	if s == "infinity" || s == "inf" {
		return 0, true, nil
	}
	unit := time.Second
	num := s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 's':
			num = s[:n-1]
		case 'm':
			unit, num = time.Minute, s[:n-1]
		case 'h':
			unit, num = time.Hour, s[:n-1]
		case 'd':
			unit, num = 24*time.Hour, s[:n-1]
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 {
		return 0, false, fmt.Errorf("invalid time interval %q", s)
	}
	return time.Duration(f * float64(unit)), false, nil
}

// istioURL is the base URL of a Bookinfo peer as Istio's images build it
// from the environment: <NAME>_HOSTNAME (default name), <NAME>_SERVICE_PORT
// (Kubernetes sets it for every Service; default 9080), and SERVICES_DOMAIN
// appended to the host when set.
func istioURL(getenv func(string) string, name string) string {
	up := strings.ToUpper(name)
	host := getenv(up + "_HOSTNAME")
	if host == "" {
		host = name
	}
	if d := getenv("SERVICES_DOMAIN"); d != "" {
		host += "." + d
	}
	port := getenv(up + "_SERVICE_PORT")
	if port == "" {
		port = "9080"
	}
	return "http://" + host + ":" + port
}
