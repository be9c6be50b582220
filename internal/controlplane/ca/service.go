package ca

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
	pb "istio.io/api/security/v1alpha1"

	"github.com/weftmesh/weft/internal/promtext"
)

// Service is Istio's IstioCertificateService
// (istio.v1.auth.IstioCertificateService/CreateCertificate): it
// authenticates the caller, then signs the CSR for the caller's identity.
type Service struct {
	pb.UnimplementedIstioCertificateServiceServer
	ca    *CA
	auths []Authenticator
	log   *slog.Logger

	csrs, authFailures, signFailures, issued atomic.Int64
}

// NewService serves ca to callers that one of auths accepts.
func NewService(ca *CA, auths []Authenticator, log *slog.Logger) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{ca: ca, auths: auths, log: log}
}

// Register adds the service to a gRPC server.
func (s *Service) Register(g grpc.ServiceRegistrar) {
	pb.RegisterIstioCertificateServiceServer(g, s)
}

// CreateCertificate implements IstioCertificateService. As in istiod, the
// certificate's identity is the authenticated caller's; the CSR only
// contributes its public key. The response's cert_chain is the leaf, the
// intermediates, and last the trust bundle (all roots, one PEM string).
func (s *Service) CreateCertificate(ctx context.Context, req *pb.IstioCertificateRequest) (*pb.IstioCertificateResponse, error) {
	s.csrs.Add(1)
	addr := ""
	if p, ok := peer.FromContext(ctx); ok {
		addr = p.Addr.String()
	}
	id, err := Authenticate(ctx, CredentialFrom(ctx), s.auths)
	if err != nil {
		s.authFailures.Add(1)
		// The reason is logged, not returned: it would help an attacker.
		s.log.Warn("certificate request refused: authentication failed", "client", addr, "err", err)
		return nil, status.Error(codes.Unauthenticated, "request authenticate failure")
	}
	signed, err := s.ca.SignCSR([]byte(req.GetCsr()), id, time.Duration(req.GetValidityDuration())*time.Second)
	if err != nil {
		s.signFailures.Add(1)
		s.log.Warn("certificate request refused", "client", addr, "identity", id.Principal(), "err", err)
		return nil, status.Errorf(codes.InvalidArgument, "CSR signing error: %v", err)
	}
	s.issued.Add(1)
	s.log.Info("certificate issued", "identity", signed.Cert.URIs[0].String(), "client", addr,
		"serial", signed.Cert.SerialNumber.Text(16), "notAfter", signed.Cert.NotAfter.UTC().Format(time.RFC3339))
	return &pb.IstioCertificateResponse{CertChain: append(signed.Chain, signed.Bundle)}, nil
}

// WriteMetrics writes the CA's Prometheus metrics (Istio's citadel_server
// names).
func (s *Service) WriteMetrics(w io.Writer) {
	pw := promtext.NewWriter(w)
	for _, m := range []struct {
		name, help string
		v          int64
	}{
		{"citadel_server_csr_count", "Certificate signing requests received.", s.csrs.Load()},
		{"citadel_server_authentication_failure_count", "Certificate requests refused because the caller was not authenticated.", s.authFailures.Load()},
		{"citadel_server_csr_sign_error_count", "Authenticated certificate requests that could not be signed.", s.signFailures.Load()},
		{"citadel_server_success_cert_issuance_count", "Certificates issued.", s.issued.Load()},
	} {
		pw.Header(m.name, "counter", m.help)
		pw.Int(m.name, "", m.v)
	}
	if c := s.ca.SigningCert(); c != nil {
		pw.Header("citadel_server_root_cert_expiry_timestamp", "gauge", "Unix time the signing root expires.")
		pw.Int("citadel_server_root_cert_expiry_timestamp", "", c.NotAfter.Unix())
	}
}
