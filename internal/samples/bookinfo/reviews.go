package bookinfo

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// ReviewsConfig configures the reviews service.
type ReviewsConfig struct {
	// Version is v1 (no ratings), v2 (black stars) or v3 (red stars).
	Version string
	// RatingsURL is the ratings service base URL (default DefaultRatingsURL).
	RatingsURL string
	// Client makes the ratings calls (nil: samples.NewClient(nil)).
	Client *http.Client
	// PodName is shown as "Reviews served by:" (default reviews-<version>-<random>).
	PodName string
	Log     *slog.Logger
}

type reviewsServer struct {
	cfg     ReviewsConfig
	color   string
	timeout time.Duration
}

// NewReviews returns the reviews service: GET /reviews/{id}, /health.
func NewReviews(cfg ReviewsConfig) (http.Handler, error) {
	s := &reviewsServer{cfg: cfg}
	switch cfg.Version {
	case "v1":
	case "v2":
		s.color, s.timeout = "black", RatingsTimeoutBlack
	case "v3":
		s.color, s.timeout = "red", RatingsTimeoutRed
	default:
		return nil, fmt.Errorf("reviews version %q: want v1, v2 or v3", cfg.Version)
	}
	if s.cfg.RatingsURL == "" {
		s.cfg.RatingsURL = DefaultRatingsURL
	}
	s.cfg.RatingsURL = strings.TrimRight(s.cfg.RatingsURL, "/")
	if s.cfg.Client == nil {
		s.cfg.Client = newClient()
	}
	if s.cfg.Log == nil {
		s.cfg.Log = slog.New(slog.DiscardHandler)
	}
	if s.cfg.PodName == "" {
		s.cfg.PodName = "reviews-" + cfg.Version + "-" + randomSuffix()
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("Reviews"))
	mux.HandleFunc("GET /reviews/{id}", s.reviews)
	return mux, nil
}

func randomSuffix() string {
	var b [5]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (s *reviewsServer) reviews(w http.ResponseWriter, r *http.Request) {
	id, ok := productID(r)
	if !ok {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product id"})
		return
	}
	out := Reviews{ID: strconv.Itoa(id), PodName: s.cfg.PodName, ClusterName: "null", Reviews: []Review{
		{Reviewer: "Reviewer1", Text: "An extremely entertaining play by Shakespeare. The slapstick humour is refreshing!"},
		{Reviewer: "Reviewer2", Text: "Absolutely fun and entertaining. The play lacks thematic depth when compared to other plays by Shakespeare."},
	}}
	if s.color != "" {
		var rt Ratings
		url := fmt.Sprintf("%s/ratings/%d", s.cfg.RatingsURL, id)
		_, err := fetch(r.Context(), s.cfg.Client, url, r.Header, nil, s.timeout, &rt)
		for i := range out.Reviews {
			stars, found := rt.Ratings[out.Reviews[i].Reviewer]
			switch {
			case err != nil:
				out.Reviews[i].Rating = &Rating{Error: RatingsServiceDown}
			case found:
				out.Reviews[i].Rating = &Rating{Stars: stars, Color: s.color}
			}
		}
		if err != nil {
			s.cfg.Log.Warn("ratings call failed", "url", url, "error", err)
		}
	}
	writeJSON(w, http.StatusOK, out)
}
