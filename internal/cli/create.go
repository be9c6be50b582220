package cli

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/weftmesh/weft/internal/controlplane/server"
)

func newCreateCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "create", Short: "Create a resource in the control plane's config directory"}
	sec := &cobra.Command{Use: "secret", Short: "Create a Secret (gateway credentials)"}
	sec.AddCommand(newCreateSecretTLSCmd())
	cmd.AddCommand(sec)
	return cmd
}

// newCreateSecretTLSCmd is `kubectl create secret tls` for the standalone
// control plane: the Secret a Gateway's credentialName names.
func newCreateSecretTLSCmd() *cobra.Command {
	var cert, key, cacert, ns, addr string
	var dryRun bool
	cmd := &cobra.Command{
		Use:   "tls NAME --cert FILE --key FILE [--cacert FILE] [-n NAMESPACE]",
		Short: "Create a kubernetes.io/tls Secret for a Gateway's credentialName",
		Long: `Creates (or replaces) a Secret of type kubernetes.io/tls with tls.crt and
tls.key, and ca.crt when --cacert is given (the client CA of a MUTUAL
gateway server), through the control plane's API like weft apply. Gateways
get it only in the Secret's own namespace (the gateway's, istio-system for
the ingress gateway). The pair is checked first: the key must match the
certificate. Replacing a Secret rotates the gateway's certificate without a
restart: new handshakes use the new one, open connections continue.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			doc, err := tlsSecretYAML(args[0], ns, cert, key, cacert)
			if err != nil {
				return err
			}
			if dryRun {
				_, err := fmt.Fprint(cmd.OutOrStdout(), doc)
				return err
			}
			c := newCPClient(cmd, addr)
			var body server.ChangeBody
			if err := c.do(cmd.Context(), "POST", server.PathApply, url.Values{"name": {"secret/" + args[0]}}, []byte(doc), &body); err != nil {
				return reportErr(cmd, err)
			}
			for _, r := range body.Results {
				fmt.Fprintf(cmd.OutOrStdout(), "%s %s/%s %s\n", r.Key.Kind, r.Key.Namespace, r.Key.Name, r.Action)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&cert, "cert", "", "PEM certificate chain (leaf first)")
	cmd.Flags().StringVar(&key, "key", "", "PEM private key of the certificate")
	cmd.Flags().StringVar(&cacert, "cacert", "", "PEM CA bundle that client certificates must chain to (MUTUAL)")
	cmd.Flags().StringVarP(&ns, "namespace", "n", "default", "namespace of the Secret (the gateway's)")
	cmd.Flags().BoolVar(&dryRun, "dry-run", false, "print the Secret instead of creating it (it contains the private key)")
	addCPFlag(cmd, &addr)
	cmd.MarkFlagRequired("cert")
	cmd.MarkFlagRequired("key")
	return cmd
}

// tlsSecretYAML reads and checks the files and renders the Secret.
func tlsSecretYAML(name, ns, certFile, keyFile, caFile string) (string, error) {
	if name == "" || strings.ContainsAny(name, "/ \n") {
		return "", fmt.Errorf("invalid secret name %q", name)
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return "", fmt.Errorf("--cert: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return "", fmt.Errorf("--key: %w", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		return "", fmt.Errorf("--cert/--key: %w", err)
	}
	b64 := base64.StdEncoding.EncodeToString
	var doc strings.Builder
	fmt.Fprintf(&doc, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\ntype: kubernetes.io/tls\ndata:\n  tls.crt: %s\n  tls.key: %s\n",
		name, ns, b64(certPEM), b64(keyPEM))
	if caFile != "" {
		caPEM, err := os.ReadFile(caFile)
		if err != nil {
			return "", fmt.Errorf("--cacert: %w", err)
		}
		if !x509.NewCertPool().AppendCertsFromPEM(caPEM) {
			return "", errors.New("--cacert: no PEM certificate")
		}
		if b, _ := pem.Decode(caPEM); b == nil {
			return "", errors.New("--cacert: no PEM certificate")
		}
		fmt.Fprintf(&doc, "  ca.crt: %s\n", b64(caPEM))
	}
	return doc.String(), nil
}
