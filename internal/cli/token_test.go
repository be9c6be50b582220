package cli

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/weftmesh/weft/internal/controlplane/ca"
)

// `weft token create` then `weft token revoke`: the state directory's
// authenticator refuses the token afterwards.
func TestTokenCreateRevoke(t *testing.T) {
	state := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		var out, errb bytes.Buffer
		if code := Main(append([]string{"token"}, args...), strings.NewReader(""), &out, &errb); code != 0 {
			t.Fatalf("weft token %v: exit %d: %s", args, code, errb.String())
		}
		return strings.TrimSpace(out.String())
	}
	tok := run("create", "--state-dir", state, "-n", "bookinfo", "--service-account", "reviews")
	tk, err := ca.LoadTokens(state, nil)
	if err != nil {
		t.Fatal(err)
	}
	auth := ca.TokenAuthenticator{Tokens: tk, Revoked: ca.NewRevocations(state)}
	if _, err := auth.Authenticate(context.Background(), ca.Credential{BearerToken: tok}); err != nil {
		t.Fatalf("fresh token refused: %v", err)
	}
	if out := run("revoke", "--state-dir", state, "-n", "bookinfo", "--service-account", "reviews"); !strings.Contains(out, "revoked bookinfo/reviews") {
		t.Errorf("revoke printed %q", out)
	}
	if _, err := auth.Authenticate(context.Background(), ca.Credential{BearerToken: tok}); !errors.Is(err, ca.ErrRevoked) {
		t.Fatalf("revoked token: %v, want ErrRevoked", err)
	}
}
