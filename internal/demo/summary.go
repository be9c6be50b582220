package demo

import (
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
)

// PrintSummary says what is running, where, and what to try.
func (m *Mesh) PrintSummary(w io.Writer) {
	m.mu.Lock()
	ws := make([]*Workload, 0, len(m.workloads))
	for _, wl := range m.workloads {
		ws = append(ws, wl)
	}
	m.mu.Unlock()
	sort.Slice(ws, func(i, j int) bool { return ws[i].IP+ws[i].Name < ws[j].IP+ws[j].Name })

	ingress := "8080"
	if p, ok := m.opts.PortMap[8080]; ok {
		ingress = fmt.Sprint(p)
	}
	fmt.Fprintf(w, "Weft demo is running.\n\n")
	fmt.Fprintf(w, "  config dir     %s   (watched: edit files here, or use weft apply)\n", m.opts.ConfigDir)
	fmt.Fprintf(w, "  logs           %s\n", m.opts.LogDir)
	fmt.Fprintf(w, "  control plane  xDS + CA (mTLS) %s, API %s\n", m.opts.SecureAddr, m.opts.MonitorAddr)
	fmt.Fprintf(w, "  admin token    %s   (weft apply/get/delete find it on their own)\n", filepath.Join(m.opts.ConfigDir+".state", "admin-token"))
	fmt.Fprintf(w, "  ingress        http://%s:%s  (Gateway port 80 -> listener 8080 and 443 -> 8443,\n", m.opts.IngressIP, ingress)
	fmt.Fprintf(w, "                 through the istio-ingressgateway Service's targetPorts, as in Istio")
	if len(m.opts.PortMap) > 0 {
		var pm []string
		for k, v := range m.opts.PortMap {
			pm = append(pm, fmt.Sprintf("%d->%d", k, v))
		}
		sort.Strings(pm)
		fmt.Fprintf(w, ";\n                 then host ports %s", strings.Join(pm, ", "))
	}
	fmt.Fprintf(w, ")\n")
	if m.External != nil {
		fmt.Fprintf(w, "  external site  %s -> %s (ports 80, 443; CA %s)\n", m.External.Host, m.External.IP, m.External.CAFile)
		fmt.Fprintf(w, "                 also *.wikipedia.org (en, de -> %s; www -> %s, port 443)\n", m.External.Names["en.wikipedia.org"], m.External.Names["www.wikipedia.org"])
		if mu := m.External.Mutual; mu != nil {
			fmt.Fprintf(w, "  mutual site    %s -> %s:443 (client certificate required: %s, %s; CA %s)\n", mu.Host, mu.IP, mu.ClientCert, mu.ClientKey, mu.CAFile)
		}
	}
	fmt.Fprintf(w, "\n")
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  WORKLOAD\tNAMESPACE\tPOD IP (sidecar)\tAPP\tHTTP PROXY\tADMIN\n")
	for _, wl := range ws {
		app, proxy := "-", "-"
		if len(wl.Sample) > 0 {
			var ps []string
			for _, p := range wl.Ports {
				ps = append(ps, fmt.Sprintf("%s:%d", wl.AppIP, p.Port))
			}
			app = strings.Join(ps, ",")
		}
		if wl.ProxyPort != 0 {
			proxy = wl.ProxyURL()
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", wl.Name, wl.Namespace, wl.IP, app, proxy, wl.AdminURL())
	}
	tw.Flush()
	curl := m.workloads["curl"]
	fmt.Fprintf(w, "\nTry:\n")
	fmt.Fprintf(w, "  curl -s http://%s:%s/productpage | grep -o 'reviews-v[0-9]'\n", m.opts.IngressIP, ingress)
	fmt.Fprintf(w, "  weft apply -f examples/tasks/virtual-service-all-v1/   # every service to v1\n")
	fmt.Fprintf(w, "  weft apply -f examples/tasks/request-routing/          # then jason to reviews v2\n")
	fmt.Fprintf(w, "  curl -s -H 'end-user: jason' http://%s:%s/productpage | grep -o 'reviews-v[0-9]'\n", m.opts.IngressIP, ingress)
	if curl != nil {
		fmt.Fprintf(w, "  curl -s -x %s http://httpbin:8000/headers       # from the curl workload's sidecar\n", curl.ProxyURL())
	}
	fmt.Fprintf(w, "  weft get virtualservice\n  weft proxy-status\n")
	fmt.Fprintf(w, "\nA process that dies is restarted (with backoff) and reported here; the rest keep running.\n")
	fmt.Fprintf(w, "Ctrl-C stops everything.\n")
}
