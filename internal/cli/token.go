package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane/ca"
	"github.com/weftmesh/weft/internal/controlplane/server"
)

func newTokenCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Manage join tokens (the credential a standalone workload's proxy presents to the CA)",
	}
	cmd.AddCommand(newTokenCreateCmd(), newTokenRevokeCmd())
	return cmd
}

func newTokenRevokeCmd() *cobra.Command {
	var ns, sa, stateDir, configDir string
	cmd := &cobra.Command{
		Use:   "revoke --namespace NS --service-account SA",
		Short: "Void every join token and workload certificate issued to an identity so far",
		Long: `Revoke an identity's credentials issued until now.

Join tokens and workload certificates issued to NS/SA before this moment stop
authenticating at the control plane: a proxy holding them can neither renew its
certificate nor open a new xDS stream (its current certificate stays valid for
mesh traffic until it expires, 24 h by default). Tokens minted from the next
second on admit the workload again. The list is <state-dir>/revoked.json; the
running control plane reads it on its next authentication.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ns == "" || sa == "" {
				return fmt.Errorf("--namespace and --service-account are required")
			}
			dir, err := tokenStateDir(stateDir, configDir)
			if err != nil {
				return err
			}
			from, err := ca.NewRevocations(dir).Revoke(ns, sa, time.Now())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s/%s: tokens and certificates issued before %s are refused\n", ns, sa, from.UTC().Format(time.RFC3339))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&ns, "namespace", "n", "", "the workload's namespace")
	f.StringVar(&sa, "service-account", "", "the workload's service account")
	f.StringVar(&stateDir, "state-dir", "", "the control plane's state directory")
	f.StringVar(&configDir, "config-dir", "", "the control plane's config directory (state dir: <config-dir>.state)")
	return cmd
}

// tokenStateDir is the control plane's state directory from the flags.
func tokenStateDir(stateDir, configDir string) (string, error) {
	if stateDir != "" {
		return stateDir, nil
	}
	if configDir == "" {
		return "", fmt.Errorf("--state-dir or --config-dir is required (the control plane's)")
	}
	return server.DefaultStateDir(configDir), nil
}

func newTokenCreateCmd() *cobra.Command {
	var (
		ns, sa, stateDir, configDir, out string
		ttl                              time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create --namespace NS --service-account SA",
		Short: "Mint a join token bound to a namespace and service account",
		Long: `Mint a join token for one workload identity.

A proxy presents the token (weft-proxy --token-file) when it asks the control
plane's CA for its certificate; the certificate, and the config the proxy
gets, are for spiffe://<trust-domain>/ns/NS/sa/SA whatever else the proxy
claims. The token is signed with a key in the control plane's state directory
(created on first use), so this command runs on the control plane's machine,
offline. Anyone holding the token can obtain certificates for its identity
until it expires: store it mode 0600 and keep --ttl short.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if ns == "" || sa == "" {
				return fmt.Errorf("--namespace and --service-account are required")
			}
			dir, err := tokenStateDir(stateDir, configDir)
			if err != nil {
				return err
			}
			tk, err := ca.LoadTokens(dir, nil)
			if err != nil {
				return err
			}
			tok, err := tk.Create(ns, sa, ttl)
			if err != nil {
				return err
			}
			if out != "" {
				if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
					return err
				}
				return os.WriteFile(out, []byte(tok+"\n"), 0o600)
			}
			fmt.Fprintln(cmd.OutOrStdout(), tok)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVarP(&ns, "namespace", "n", "", "the workload's namespace")
	f.StringVar(&sa, "service-account", "", "the workload's service account")
	f.DurationVar(&ttl, "ttl", ca.DefaultTokenTTL, "how long the token is valid")
	f.StringVar(&stateDir, "state-dir", "", "the control plane's state directory")
	f.StringVar(&configDir, "config-dir", "", "the control plane's config directory (state dir: <config-dir>.state)")
	f.StringVarP(&out, "output", "o", "", "write the token to this file (mode 0600) instead of stdout")
	return cmd
}
