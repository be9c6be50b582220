package bookinfo

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/weftmesh/weft/internal/samples"
)

// SessionCookie is the cookie POST /login sets, named as in the original
// (Flask's session cookie).
const SessionCookie = "session"

// ProductPageConfig configures productpage.
type ProductPageConfig struct {
	DetailsURL string // default DefaultDetailsURL
	ReviewsURL string // default DefaultReviewsURL
	RatingsURL string // default DefaultRatingsURL
	// Client makes the outbound calls (nil: samples.NewClient(nil)).
	Client *http.Client
	// SessionKey signs session cookies (nil: a random key per process).
	SessionKey []byte
	Log        *slog.Logger
}

type productPage struct {
	cfg ProductPageConfig
}

func newClient() *http.Client { return samples.NewClient(nil) }

// NewProductPage returns productpage: /, /productpage, /login, /logout,
// /health and the /api/v1/products JSON API.
func NewProductPage(cfg ProductPageConfig) http.Handler {
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
		*s = strings.TrimRight(*s, "/")
	}
	def(&cfg.DetailsURL, DefaultDetailsURL)
	def(&cfg.ReviewsURL, DefaultReviewsURL)
	def(&cfg.RatingsURL, DefaultRatingsURL)
	if cfg.Client == nil {
		cfg.Client = newClient()
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if len(cfg.SessionKey) == 0 {
		cfg.SessionKey = make([]byte, 32)
		rand.Read(cfg.SessionKey)
	}
	p := &productPage{cfg: cfg}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.index)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("Product page is healthy"))
	})
	mux.HandleFunc("GET /productpage", p.page)
	mux.HandleFunc("GET /login", p.loginForm)
	mux.HandleFunc("POST /login", p.login)
	mux.HandleFunc("GET /logout", p.logout)
	mux.HandleFunc("GET /api/v1/products", p.apiProducts)
	mux.HandleFunc("GET /api/v1/products/{id}", p.apiDetails)
	mux.HandleFunc("GET /api/v1/products/{id}/reviews", p.apiReviews)
	mux.HandleFunc("GET /api/v1/products/{id}/ratings", p.apiRatings)
	return mux
}

// Product is an entry of /api/v1/products.
type Product struct {
	ID              int    `json:"id"`
	Title           string `json:"title"`
	DescriptionHTML string `json:"descriptionHtml"`
}

func products() []Product {
	return []Product{{
		ID:    0,
		Title: "The Comedy of Errors",
		DescriptionHTML: `<a href="https://en.wikipedia.org/wiki/The_Comedy_of_Errors">Wikipedia Summary</a>: ` +
			`The Comedy of Errors is one of <b>William Shakespeare's</b> early plays. It is his shortest and ` +
			`one of his most farcical comedies, with a major part of the humour coming from slapstick and ` +
			`mistaken identity, in addition to puns and word play.`,
	}}
}

// user is the signed-in user: the session cookie, else an end-user header
// (which lets tests skip the login round trip).
func (p *productPage) user(r *http.Request) string {
	if c, err := r.Cookie(SessionCookie); err == nil {
		if u, ok := p.verify(c.Value); ok {
			return u
		}
	}
	return r.Header.Get("end-user")
}

func (p *productPage) sign(user string) string {
	m := hmac.New(sha256.New, p.cfg.SessionKey)
	m.Write([]byte(user))
	return base64.RawURLEncoding.EncodeToString([]byte(user)) + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func (p *productPage) verify(v string) (string, bool) {
	u64, sig64, ok := strings.Cut(v, ".")
	if !ok {
		return "", false
	}
	u, err1 := base64.RawURLEncoding.DecodeString(u64)
	sig, err2 := base64.RawURLEncoding.DecodeString(sig64)
	if err1 != nil || err2 != nil {
		return "", false
	}
	m := hmac.New(sha256.New, p.cfg.SessionKey)
	m.Write(u)
	return string(u), hmac.Equal(sig, m.Sum(nil))
}

// outHeaders are the extra headers for calls made for r: the signed-in
// user as end-user, as the original does.
func (p *productPage) outHeaders(r *http.Request) map[string]string {
	if u := p.user(r); u != "" {
		return map[string]string{"end-user": u}
	}
	return nil
}

func (p *productPage) details(r *http.Request, id int) (int, any) {
	var d Details
	url := fmt.Sprintf("%s/details/%d", p.cfg.DetailsURL, id)
	status, err := fetch(r.Context(), p.cfg.Client, url, r.Header, p.outHeaders(r), DetailsTimeout, &d)
	if err != nil {
		p.cfg.Log.Warn("details call failed", "url", url, "error", err)
		return errStatus(status), map[string]string{"error": DetailsUnavailable}
	}
	return http.StatusOK, d
}

// reviews calls reviews with a 3 s timeout and one retry on any failure,
// like the original (which does this on purpose for the fault-injection
// task).
func (p *productPage) reviews(r *http.Request, id int) (int, *Reviews, string) {
	url := fmt.Sprintf("%s/reviews/%d", p.cfg.ReviewsURL, id)
	status := 0
	for attempt := 1; attempt <= ReviewsAttempts; attempt++ {
		var rv Reviews
		start := time.Now()
		var err error
		status, err = fetch(r.Context(), p.cfg.Client, url, r.Header, p.outHeaders(r), ReviewsTimeout, &rv)
		if err == nil {
			return http.StatusOK, &rv, ""
		}
		p.cfg.Log.Warn("reviews call failed", "url", url, "attempt", attempt, "after", time.Since(start).Round(time.Millisecond).String(), "error", err)
		if r.Context().Err() != nil {
			break
		}
	}
	return errStatus(status), nil, ReviewsUnavailable
}

func errStatus(s int) int {
	if s == 0 || s == http.StatusOK {
		return http.StatusInternalServerError
	}
	return s
}

func (p *productPage) page(w http.ResponseWriter, r *http.Request) {
	const id = 0
	dStatus, d := p.details(r, id)
	rStatus, rv, rErr := p.reviews(r, id)
	data := pageData{
		User:          p.user(r),
		Product:       products()[0],
		DetailsStatus: dStatus,
		ReviewsStatus: rStatus,
		Reviews:       rv,
		ReviewsError:  rErr,
	}
	if det, ok := d.(Details); ok {
		data.Details = &det
	} else {
		data.DetailsError = DetailsUnavailable
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if err := pageTemplate.Execute(w, data); err != nil {
		p.cfg.Log.Error("rendering productpage", "error", err)
	}
}

func (p *productPage) index(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	indexTemplate.Execute(w, nil)
}

func (p *productPage) loginForm(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	loginTemplate.Execute(w, nil)
}

// login accepts any user name (the original checks no password either),
// sets the session cookie and goes back to the page.
func (p *productPage) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form: "+err.Error(), http.StatusBadRequest)
		return
	}
	user := strings.TrimSpace(r.PostForm.Get("username"))
	if user == "" {
		http.Error(w, "username required", http.StatusBadRequest)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: p.sign(user), Path: "/", HttpOnly: true})
	http.Redirect(w, r, backTo(r), http.StatusFound)
}

func (p *productPage) logout(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: SessionCookie, Value: "", Path: "/", MaxAge: -1})
	http.Redirect(w, r, backTo(r), http.StatusFound)
}

// backTo is the Referer when it is a local path, else /productpage.
func backTo(r *http.Request) string {
	if ref := r.Referer(); strings.HasPrefix(ref, "/") && !strings.HasPrefix(ref, "//") {
		return ref
	}
	return "/productpage"
}

func (p *productPage) apiProducts(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, products())
}

func (p *productPage) apiDetails(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(r)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product id"})
		return
	}
	status, d := p.details(r, id)
	writeJSON(w, status, d)
}

func (p *productPage) apiReviews(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(r)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product id"})
		return
	}
	status, rv, msg := p.reviews(r, id)
	if rv == nil {
		writeJSON(w, status, map[string]string{"error": msg})
		return
	}
	writeJSON(w, status, rv)
}

func (p *productPage) apiRatings(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(r)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product id"})
		return
	}
	var rt Ratings
	url := fmt.Sprintf("%s/ratings/%d", p.cfg.RatingsURL, id)
	status, err := fetch(r.Context(), p.cfg.Client, url, r.Header, p.outHeaders(r), RatingsTimeout, &rt)
	if err != nil {
		p.cfg.Log.Warn("ratings call failed", "url", url, "error", err)
		writeJSON(w, errStatus(status), map[string]string{"error": RatingsUnavailable})
		return
	}
	writeJSON(w, http.StatusOK, rt)
}
