package store

import (
	"io"

	"github.com/weftmesh/weft/internal/promtext"
)

// WriteMetrics writes weft_config_errors{file=…}: the number of current
// problems per rejected file (Prometheus text format).
func (d *Dir) WriteMetrics(w io.Writer) error {
	pw := promtext.NewWriter(w)
	pw.Header("weft_config_errors", "gauge", "Problems in config files whose last good version keeps serving.")
	for _, st := range d.Status() {
		if len(st.Errors) > 0 {
			pw.Int("weft_config_errors", promtext.Labels("file", st.File), int64(len(st.Errors)))
		}
	}
	return pw.Err()
}
