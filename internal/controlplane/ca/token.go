package ca

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/meshtls"
)

// Join tokens are the standalone credential of a workload: bound to a
// namespace and service account, with an expiry, and signed (HMAC-SHA256)
// with a key only the control plane holds (<state-dir>/token.key, 0600).
// Form: "wjt1.<base64url payload>.<base64url mac>". They are bearer
// credentials: whoever holds one can get certificates for its identity
// until it expires, so keep token files 0600 and TTLs short.

const (
	tokenPrefix  = "wjt1."
	tokenKeyFile = "token.key"
	// DefaultTokenTTL is a join token's lifetime when none is given.
	DefaultTokenTTL = 24 * time.Hour
)

type tokenClaims struct {
	Namespace      string `json:"ns"`
	ServiceAccount string `json:"sa"`
	IssuedAt       int64  `json:"iat"`
	Expires        int64  `json:"exp"`
	ID             string `json:"jti"`
}

// Tokens creates and verifies join tokens.
type Tokens struct {
	key []byte
	now func() time.Time
}

// LoadTokens reads the token key from stateDir, creating it (0600) on
// first use. Concurrent first uses (the control plane and `weft token
// create`) agree on one key.
func LoadTokens(stateDir string, now func() time.Time) (*Tokens, error) {
	if now == nil {
		now = time.Now
	}
	if stateDir == "" {
		return nil, errors.New("join tokens need a state directory")
	}
	if err := os.MkdirAll(stateDir, 0o700); err != nil {
		return nil, err
	}
	path := filepath.Join(stateDir, tokenKeyFile)
	for range 3 {
		b, err := os.ReadFile(path)
		if err == nil {
			key, err := hex.DecodeString(strings.TrimSpace(string(b)))
			if err != nil || len(key) < 32 {
				return nil, fmt.Errorf("%s: not a token key", path)
			}
			return &Tokens{key: key, now: now}, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		// O_EXCL: a concurrent creator wins and we read its key.
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		_, werr := f.WriteString(hex.EncodeToString(key) + "\n")
		cerr := f.Close()
		if err := errors.Join(werr, cerr); err != nil {
			os.Remove(path)
			return nil, err
		}
		return &Tokens{key: key, now: now}, nil
	}
	return nil, fmt.Errorf("%s: could not create or read the token key", path)
}

// NewTokens uses key directly (tests).
func NewTokens(key []byte, now func() time.Time) *Tokens {
	if now == nil {
		now = time.Now
	}
	return &Tokens{key: key, now: now}
}

// Create mints a token for namespace/serviceAccount valid for ttl.
func (t *Tokens) Create(namespace, serviceAccount string, ttl time.Duration) (string, error) {
	if err := checkName("namespace", namespace); err != nil {
		return "", err
	}
	if err := checkName("service account", serviceAccount); err != nil {
		return "", err
	}
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	id := make([]byte, 12)
	if _, err := rand.Read(id); err != nil {
		return "", err
	}
	now := t.now()
	c := tokenClaims{Namespace: namespace, ServiceAccount: serviceAccount, IssuedAt: now.Unix(),
		Expires: now.Add(ttl).Unix(), ID: hex.EncodeToString(id)}
	payload, err := json.Marshal(c)
	if err != nil {
		return "", err
	}
	body := tokenPrefix + base64.RawURLEncoding.EncodeToString(payload)
	return body + "." + base64.RawURLEncoding.EncodeToString(t.mac(body)), nil
}

func (t *Tokens) mac(body string) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write([]byte(body))
	return m.Sum(nil)
}

// Errors of Verify; callers answer with a generic message and log these.
var (
	ErrTokenMalformed = errors.New("join token malformed")
	ErrTokenSignature = errors.New("join token signature invalid")
	ErrTokenExpired   = errors.New("join token expired")
)

// Verify checks a token's signature and expiry and returns its identity
// (without trust domain: the CA adds the mesh's).
func (t *Tokens) Verify(token string) (meshtls.Identity, time.Time, error) {
	id, c, err := t.verify(token)
	if err != nil && !errors.Is(err, ErrTokenExpired) {
		return meshtls.Identity{}, time.Time{}, err
	}
	return id, time.Unix(c.Expires, 0), err
}

// verify checks signature and expiry; it returns the identity and the
// claims (set when the signature is good).
func (t *Tokens) verify(token string) (meshtls.Identity, tokenClaims, error) {
	token = strings.TrimSpace(token)
	if !strings.HasPrefix(token, tokenPrefix) || len(token) > 4096 {
		return meshtls.Identity{}, tokenClaims{}, ErrTokenMalformed
	}
	i := strings.LastIndexByte(token, '.')
	if i <= len(tokenPrefix) {
		return meshtls.Identity{}, tokenClaims{}, ErrTokenMalformed
	}
	body, sig := token[:i], token[i+1:]
	got, err := base64.RawURLEncoding.DecodeString(sig)
	if err != nil {
		return meshtls.Identity{}, tokenClaims{}, ErrTokenMalformed
	}
	if !hmac.Equal(got, t.mac(body)) {
		return meshtls.Identity{}, tokenClaims{}, ErrTokenSignature
	}
	payload, err := base64.RawURLEncoding.DecodeString(body[len(tokenPrefix):])
	if err != nil {
		return meshtls.Identity{}, tokenClaims{}, ErrTokenMalformed
	}
	var c tokenClaims
	if err := json.Unmarshal(payload, &c); err != nil || c.Namespace == "" || c.ServiceAccount == "" {
		return meshtls.Identity{}, tokenClaims{}, ErrTokenMalformed
	}
	if !t.now().Before(time.Unix(c.Expires, 0)) {
		return meshtls.Identity{}, c, ErrTokenExpired
	}
	return meshtls.Identity{Namespace: c.Namespace, ServiceAccount: c.ServiceAccount}, c, nil
}

// checkName accepts Kubernetes DNS-1123 labels (namespaces and service
// accounts are such names); anything else could not appear in a SPIFFE
// path unambiguously.
func checkName(what, s string) error {
	if s == "" || len(s) > 253 {
		return fmt.Errorf("%s %q: must be 1-253 characters", what, s)
	}
	for i, r := range s {
		ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || (r == '-' || r == '.') && i > 0 && i < len(s)-1
		if !ok {
			return fmt.Errorf("%s %q: want lowercase letters, digits, '-' and '.'", what, s)
		}
	}
	return nil
}
