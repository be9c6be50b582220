package cluster

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// Dump writes the admin /clusters text in Envoy's shape: per cluster its
// breaker thresholds, then per host its counters, health flags, weight,
// locality and priority, one "name::host::key::value" line each.
func (s *Set) Dump(w io.Writer) {
	if s == nil {
		return
	}
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	for _, name := range s.Names() {
		c := s.clusters[name]
		cfg := c.sh.cfg
		line := func(parts ...string) {
			bw.WriteString(strings.Join(parts, "::"))
			bw.WriteByte('\n')
		}
		line(name, "observability_name", name)
		for _, t := range []struct {
			k string
			v int64
		}{{"max_connections", cfg.maxConnections}, {"max_pending_requests", cfg.maxPending},
			{"max_requests", cfg.maxRequests}, {"max_retries", cfg.maxRetries}} {
			line(name, "default_priority", t.k, strconv.FormatInt(t.v, 10))
		}
		line(name, "added_via_api", "true")
		if c.sh.od != nil {
			line(name, "outlier", "success_rate_average", "-1")
			line(name, "outlier", "success_rate_ejection_threshold", "-1")
		}
		v := c.cur.Load()
		rows := make([]member, 0, len(v.members))
		rows = append(rows, v.members...)
		if cfg.disc == discOriginalDst {
			if m := c.sh.dynSnap.Load(); m != nil {
				for _, k := range sortedKeys(*m) {
					rows = append(rows, member{h: (*m)[k], weight: 1, healthy: true})
				}
			}
		}
		for _, m := range rows {
			h := m.h
			p := func(k, val string) { line(name, h.addr, k, val) }
			u := func(k string, val uint64) { p(k, strconv.FormatUint(val, 10)) }
			p("cx_active", strconv.FormatInt(h.cxAct.Load(), 10))
			u("cx_total", h.cxTot.Load())
			p("rq_active", strconv.FormatInt(h.active.Load(), 10))
			u("rq_error", h.rqErr.Load())
			tot, errs := h.rqTot.Load(), h.rqErr.Load()
			u("rq_success", tot-min(errs, tot))
			u("rq_total", tot)
			p("hostname", "")
			p("health_flags", healthFlags(m))
			u("weight", uint64(m.weight))
			loc := strings.SplitN(m.locality, "/", 3)
			for len(loc) < 3 {
				loc = append(loc, "")
			}
			p("region", loc[0])
			p("zone", loc[1])
			p("sub_zone", loc[2])
			p("canary", "false")
			u("priority", uint64(m.priority))
			p("success_rate", "-1")
			p("local_origin_success_rate", "-1")
		}
	}
}

func healthFlags(m member) string {
	var f []string
	if !m.healthy {
		f = append(f, "/failed_eds_health")
	}
	if m.h.od.ejected() {
		f = append(f, "/failed_outlier_check")
	}
	if len(f) == 0 {
		return "healthy"
	}
	return strings.Join(f, "")
}
