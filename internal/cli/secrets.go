package cli

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	adminv3 "github.com/envoyproxy/go-control-plane/envoy/admin/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/weftmesh/weft/internal/controlplane/server"
	"github.com/weftmesh/weft/internal/controlplane/xds"
)

// proxySecrets prints the secrets a proxy holds, read from its own admin
// /config_dump (the control plane never has the workload's key or
// certificate: the proxy makes them). Keys are redacted by the proxy and
// never printed here.
func proxySecrets(cmd *cobra.Command, cpAddr, adminAddr, proxy, output string) error {
	if adminAddr == "" {
		var err error
		if adminAddr, err = resolveAdmin(cmd, cpAddr, proxy); err != nil {
			return err
		}
	}
	if !strings.Contains(adminAddr, "://") {
		adminAddr = "http://" + adminAddr
	}
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(strings.TrimRight(adminAddr, "/") + "/config_dump")
	if err != nil {
		return fmt.Errorf("proxy admin: %w (give its address with --admin)", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("proxy admin: %s", resp.Status)
	}
	dump := &adminv3.ConfigDump{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(b, dump); err != nil {
		return fmt.Errorf("decoding the proxy's config dump: %w", err)
	}
	out := cmd.OutOrStdout()
	if output == "json" {
		return printDumpJSON(out, dump, "secrets")
	}
	for _, a := range dump.GetConfigs() {
		sd := &adminv3.SecretsConfigDump{}
		if a.MessageIs(sd) {
			if err := a.UnmarshalTo(sd); err != nil {
				return err
			}
			printSecretDetails(out, sd, time.Now())
		}
	}
	return nil
}

// resolveAdmin finds a proxy's admin address from the control plane's
// proxy list: its IP and the default admin port.
func resolveAdmin(cmd *cobra.Command, cpAddr, proxy string) (string, error) {
	var list []xds.ProxyStatus
	if err := newCPClient(cmd, cpAddr).do(cmd.Context(), "GET", server.PathProxies, nil, nil, &list); err != nil {
		return "", reportErr(cmd, err)
	}
	found := filterProxies(list, proxy)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no connected proxy %q", proxy)
	case 1:
		return net.JoinHostPort(found[0].IP, "15000"), nil
	}
	return "", fmt.Errorf("%q names %d proxies: use the node id or name.namespace", proxy, len(found))
}

// printSecretDetails is istioctl proxy-config secret's table, with the
// identity and when the proxy rotates its certificate.
func printSecretDetails(w io.Writer, d *adminv3.SecretsConfigDump, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 4, 3, ' ', 0)
	fmt.Fprintln(tw, "RESOURCE NAME\tTYPE\tSTATUS\tVALID CERT\tSERIAL NUMBER\tIDENTITY (SAN)\tNOT BEFORE\tNOT AFTER\tROTATES AT")
	for _, ds := range d.GetDynamicActiveSecrets() {
		s := &tlsv3.Secret{}
		if err := ds.GetSecret().UnmarshalTo(s); err != nil {
			fmt.Fprintf(tw, "%s\t\tUNREADABLE: %v\t\t\t\t\t\t\n", ds.GetName(), err)
			continue
		}
		typ, pemBytes := "Cert Chain", s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()
		if s.GetValidationContext() != nil {
			typ, pemBytes = "CA", s.GetValidationContext().GetTrustedCa().GetInlineBytes()
		}
		if pemBytes == nil {
			pemBytes = []byte(s.GetTlsCertificate().GetCertificateChain().GetInlineString() + s.GetValidationContext().GetTrustedCa().GetInlineString())
		}
		certs := parsePEMCerts(pemBytes)
		if len(certs) == 0 {
			fmt.Fprintf(tw, "%s\t%s\tNO CERTIFICATE\t\t\t\t\t\t\n", ds.GetName(), typ)
			continue
		}
		if typ == "Cert Chain" {
			certs = certs[:1] // the leaf; intermediates follow it
		}
		for _, c := range certs {
			valid := now.After(c.NotBefore) && now.Before(c.NotAfter)
			san := strings.Join(sans(c), ",")
			rotates := ""
			if typ == "Cert Chain" {
				if got, err := time.Parse(time.RFC3339Nano, ds.GetVersionInfo()); err == nil {
					// The proxy renews at half the lifetime left when it got
					// the certificate (internal/proxy/identity).
					rotates = got.Add(c.NotAfter.Sub(got) / 2).UTC().Format(time.RFC3339)
				}
			}
			fmt.Fprintf(tw, "%s\t%s\tACTIVE\t%t\t%s\t%s\t%s\t%s\t%s\n", ds.GetName(), typ, valid, c.SerialNumber.Text(16), san,
				c.NotBefore.UTC().Format(time.RFC3339), c.NotAfter.UTC().Format(time.RFC3339), rotates)
		}
	}
	tw.Flush()
}

func parsePEMCerts(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var blk *pem.Block
		blk, b = pem.Decode(b)
		if blk == nil {
			return out
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		if c, err := x509.ParseCertificate(blk.Bytes); err == nil {
			out = append(out, c)
		}
	}
}

func sans(c *x509.Certificate) []string {
	var out []string
	for _, u := range c.URIs {
		out = append(out, u.String())
	}
	out = append(out, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		out = append(out, ip.String())
	}
	if len(out) == 0 {
		out = append(out, c.Subject.CommonName)
	}
	return out
}
