package bookinfo

import "net/http"

// NewRatings returns the ratings service: GET /ratings/{id}, /health.
func NewRatings() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("Ratings"))
	mux.HandleFunc("GET /ratings/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := productID(r)
		if !ok {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product ID"})
			return
		}
		writeJSON(w, http.StatusOK, Ratings{ID: id, Ratings: map[string]int{"Reviewer1": 5, "Reviewer2": 4}})
	})
	return mux
}
