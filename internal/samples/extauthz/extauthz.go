// Package extauthz is Weft's counterpart of Istio's ext-authz sample: an
// external authorization server for CUSTOM AuthorizationPolicies that
// allows a request carrying the header "x-ext-authz: allow" and denies
// every other, over Envoy's HTTP protocol (any path: the check request
// mirrors the original) and its gRPC protocol (envoy.service.auth.v3).
// Like Istio's, it answers with "x-ext-authz-check-result: allowed|denied".
package extauthz

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
)

const (
	checkHeader  = "x-ext-authz"
	allowValue   = "allow"
	resultHeader = "x-ext-authz-check-result"
	deniedBody   = "denied by ext_authz for not found header `x-ext-authz: allow` in the request"
)

// HTTP is the HTTP check handler.
type HTTP struct{ Log *slog.Logger }

func (h HTTP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if strings.EqualFold(r.Header.Get(checkHeader), allowValue) {
		h.log().Info("allowed", "protocol", "http", "method", r.Method, "path", r.URL.Path, "host", r.Host)
		w.Header().Set(resultHeader, "allowed")
		w.WriteHeader(http.StatusOK)
		return
	}
	h.log().Info("denied", "protocol", "http", "method", r.Method, "path", r.URL.Path, "host", r.Host)
	w.Header().Set(resultHeader, "denied")
	w.WriteHeader(http.StatusForbidden)
	fmt.Fprint(w, deniedBody)
}

func (h HTTP) log() *slog.Logger {
	if h.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return h.Log
}

// GRPC is the envoy.service.auth.v3.Authorization server.
type GRPC struct {
	authv3.UnimplementedAuthorizationServer
	Log *slog.Logger
}

// Check allows requests with x-ext-authz: allow.
func (g *GRPC) Check(ctx context.Context, req *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	log := g.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	http := req.GetAttributes().GetRequest().GetHttp()
	if strings.EqualFold(http.GetHeaders()[checkHeader], allowValue) {
		log.Info("allowed", "protocol", "grpc", "method", http.GetMethod(), "path", http.GetPath(), "host", http.GetHost())
		return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.OK)},
			HttpResponse: &authv3.CheckResponse_OkResponse{OkResponse: &authv3.OkHttpResponse{
				Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: resultHeader, Value: "allowed"}}},
			}}}, nil
	}
	log.Info("denied", "protocol", "grpc", "method", http.GetMethod(), "path", http.GetPath(), "host", http.GetHost())
	return &authv3.CheckResponse{Status: &status.Status{Code: int32(codes.PermissionDenied)},
		HttpResponse: &authv3.CheckResponse_DeniedResponse{DeniedResponse: &authv3.DeniedHttpResponse{
			Status:  &typev3.HttpStatus{Code: typev3.StatusCode_Forbidden},
			Headers: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: resultHeader, Value: "denied"}}},
			Body:    deniedBody,
		}}}, nil
}
