package store

import (
	"fmt"
	"io"
)

// WriteMetrics writes weft_config_errors{file=…}: the number of current
// problems per rejected file (Prometheus text format).
func (d *Dir) WriteMetrics(w io.Writer) error {
	_, err := fmt.Fprintf(w, "# HELP weft_config_errors Problems in config files whose last good version keeps serving.\n# TYPE weft_config_errors gauge\n")
	if err != nil {
		return err
	}
	for _, st := range d.Status() {
		if len(st.Errors) > 0 {
			if _, err := fmt.Fprintf(w, "weft_config_errors{file=%q} %d\n", st.File, len(st.Errors)); err != nil {
				return err
			}
		}
	}
	return nil
}
