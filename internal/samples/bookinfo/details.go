package bookinfo

import "net/http"

// NewDetails returns the details service: GET /details/{id}, /health.
func NewDetails() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", health("Details"))
	mux.HandleFunc("GET /details/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, ok := productID(r)
		if !ok {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "please provide numeric product id"})
			return
		}
		writeJSON(w, http.StatusOK, bookDetails(id))
	})
	return mux
}
