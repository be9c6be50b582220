package config

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"
	typev1beta1 "istio.io/api/type/v1beta1"
)

func init() {
	specValidators[KindDestinationRule] = func(v *validator, m proto.Message) { v.destinationRule(m.(*networking.DestinationRule)) }
	specValidators[KindGateway] = func(v *validator, m proto.Message) { v.gateway(m.(*networking.Gateway)) }
	specValidators[KindServiceEntry] = func(v *validator, m proto.Message) { v.serviceEntry(m.(*networking.ServiceEntry)) }
	specValidators[KindWorkloadEntry] = func(v *validator, m proto.Message) { v.workloadEntry("spec", m.(*networking.WorkloadEntry), true) }
	specValidators[KindWorkloadGroup] = func(v *validator, m proto.Message) { v.workloadGroup(m.(*networking.WorkloadGroup)) }
	specValidators[KindSidecar] = func(v *validator, m proto.Message) { v.sidecar(m.(*networking.Sidecar)) }
}

// Protocols Istio's protocol.Parse knows, upper-cased.
var protocols = map[string]bool{
	"HTTP": true, "HTTPS": true, "HTTP2": true, "HTTP_PROXY": true, "GRPC": true, "GRPC-WEB": true,
	"TCP": true, "TLS": true, "MONGO": true, "REDIS": true, "MYSQL": true, "UDP": true,
}

func (v *validator) protocol(p, proto string, required bool) {
	if proto == "" {
		if required {
			v.errorf(p, "protocol is required")
		}
		return
	}
	if !protocols[strings.ToUpper(proto)] {
		v.errorf(p, "unsupported protocol %q (one of HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, MONGO, REDIS, MYSQL)", proto)
	}
}

func isHTTPProtocol(p string) bool {
	switch strings.ToUpper(p) {
	case "HTTP", "HTTP2", "GRPC", "GRPC-WEB", "HTTP_PROXY":
		return true
	}
	return false
}

func isTLSProtocol(p string) bool {
	switch strings.ToUpper(p) {
	case "HTTPS", "TLS":
		return true
	}
	return false
}

// selector validates a workload selector's labels: no wildcards, no empty
// keys (Istio's validateWorkloadSelector).
func (v *validator) selector(p string, labels map[string]string) {
	for k, val := range labels {
		lp := p + "[" + k + "]"
		if k == "" {
			v.errorf(lp, "empty key is not supported in selector")
			continue
		}
		if strings.Contains(k, "*") || strings.Contains(val, "*") {
			v.errorf(lp, "wildcard is not supported in selector: %q", k+"="+val)
			continue
		}
	}
	v.labels(p, labels)
}

func (v *validator) destinationRule(dr *networking.DestinationRule) {
	switch {
	case dr.Host == "":
		v.errorf("spec.host", "host is required")
	case isIP(dr.Host):
	default:
		if msg := checkWildcardHost(dr.Host); msg != "" {
			v.errorf("spec.host", "%s", msg)
		}
	}
	v.trafficPolicy("spec.trafficPolicy", dr.TrafficPolicy)
	names := map[string]int{}
	for i, s := range dr.Subsets {
		p := fmt.Sprintf("spec.subsets[%d]", i)
		switch {
		case s.Name == "":
			v.errorf(p+".name", "subset name cannot be empty")
		case !isDNSLabel(s.Name):
			v.errorf(p+".name", "subset name %q is invalid: must be a lower-case RFC 1123 label", s.Name)
		}
		if j, dup := names[s.Name]; dup && s.Name != "" {
			v.errorf(p+".name", "duplicate subset name %q (also spec.subsets[%d])", s.Name, j)
		}
		names[s.Name] = i
		v.labels(p+".labels", s.Labels)
		v.trafficPolicy(p+".trafficPolicy", s.TrafficPolicy)
	}
	v.exportTo("spec.exportTo", dr.ExportTo, false)
	if dr.WorkloadSelector != nil {
		v.selector("spec.workloadSelector.matchLabels", dr.WorkloadSelector.MatchLabels)
		v.emptySelector("spec.workloadSelector", dr.WorkloadSelector.MatchLabels)
	}
}

func (v *validator) trafficPolicy(p string, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	// Istio: validateTrafficPolicy.
	if proto.Equal(tp, &networking.TrafficPolicy{}) {
		v.errorf(p, "traffic policy must have at least one field")
		return
	}
	v.loadBalancer(p+".loadBalancer", tp.LoadBalancer, tp.OutlierDetection)
	v.connectionPool(p+".connectionPool", tp.ConnectionPool)
	v.outlier(p+".outlierDetection", tp.OutlierDetection)
	v.clientTLS(p+".tls", tp.Tls)
	for i, pl := range tp.PortLevelSettings {
		pp := fmt.Sprintf("%s.portLevelSettings[%d]", p, i)
		if pl.Port == nil {
			v.errorf(pp, "portLevelSettings entry must have a port")
		} else {
			v.port(pp+".port.number", int64(pl.Port.Number))
		}
		// Istio: validatePortTrafficPolicies (it has no duplicate-port
		// rule; the first entry for a port applies).
		if pl.OutlierDetection == nil && pl.ConnectionPool == nil && pl.LoadBalancer == nil && pl.Tls == nil {
			v.errorf(pp, "port traffic policy must have at least one field")
		}
		v.loadBalancer(pp+".loadBalancer", pl.LoadBalancer, pl.OutlierDetection)
		v.connectionPool(pp+".connectionPool", pl.ConnectionPool)
		v.outlier(pp+".outlierDetection", pl.OutlierDetection)
		v.clientTLS(pp+".tls", pl.Tls)
	}
}

func (v *validator) loadBalancer(p string, lb *networking.LoadBalancerSettings, outlier *networking.OutlierDetection) {
	if lb == nil {
		return
	}
	if ch := lb.GetConsistentHash(); ch != nil {
		cp := p + ".consistentHash"
		// Istio's validateLoadBalancer accepts a consistentHash without a
		// hash key, useSourceIp false and an empty query parameter name.
		switch k := ch.HashKey.(type) {
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
			// Not checked by Istio; kept because Envoy rejects an invalid
			// header name and Weft checks what it publishes.
			v.headerName(cp+".httpHeaderName", k.HttpHeaderName)
		case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
			c := k.HttpCookie
			if c.Name == "" {
				v.errorf(cp+".httpCookie.name", "name required for httpCookie")
			}
			if c.Ttl != nil && c.Ttl.AsDuration() < 0 {
				v.errorf(cp+".httpCookie.ttl", "ttl must not be negative")
			}
		}
		// Istio: maglev tableSize is required, prime and below 5000011.
		if m := ch.GetMaglev(); m != nil {
			switch {
			case m.TableSize == 0:
				v.errorf(cp+".maglev.tableSize", "tableSize must be set for maglev")
			case m.TableSize >= 5000011:
				v.errorf(cp+".maglev.tableSize", "tableSize must be less than 5000011 for maglev")
			case !isPrime(m.TableSize):
				v.errorf(cp+".maglev.tableSize", "tableSize must be a prime number for maglev")
			}
		}
		if ch.MinimumRingSize != 0 {
			v.warnf(cp+".minimumRingSize", "consistent hash MinimumRingSize is deprecated, use ConsistentHashLB's RingHash configuration instead")
			if ch.GetHashAlgorithm() != nil {
				v.errorf(cp+".minimumRingSize", "only one of MinimumRingSize or Maglev/Ringhash can be specified")
			}
		}
	}
	if lb.WarmupDurationSecs != nil {
		v.duration(p+".warmupDurationSecs", lb.WarmupDurationSecs)
	}
	v.localityLB(p+".localityLbSetting", lb.LocalityLbSetting, outlier)
}

// isPrime is Envoy's (and so Istio's) primality test: 1, 2 and 3 count.
func isPrime(n uint64) bool {
	if n != 0 && n < 4 {
		return true
	}
	if n%2 == 0 {
		return false
	}
	for i := uint64(3); i*i <= n; i += 2 {
		if n%i == 0 {
			return false
		}
	}
	return true
}

func (v *validator) localityLB(p string, l *networking.LocalityLoadBalancerSetting, outlier *networking.OutlierDetection) {
	if l == nil {
		return
	}
	// Istio: agent.ValidateLocalityLbSetting.
	if len(l.Distribute) > 0 && len(l.Failover) > 0 {
		v.errorf(p, "can not simultaneously specify 'distribute' and 'failover'")
		return
	}
	if len(l.Failover) > 0 {
		for _, pl := range l.FailoverPriority {
			switch pl {
			case "topology.kubernetes.io/region", "topology.kubernetes.io/zone", "topology.istio.io/subzone":
				v.errorf(p+".failoverPriority", "can not simultaneously set 'failover' and topology label '%s' in 'failover_priority'", pl)
				return
			}
		}
	}
	if (len(l.Failover) > 0 || len(l.FailoverPriority) > 0) && outlier == nil {
		v.warnf(p, "outlier detection policy must be provided for failover")
	}
	var froms []string
	for i, d := range l.Distribute {
		froms = append(froms, d.From)
		var tos []string
		for loc := range d.To {
			tos = append(tos, loc)
		}
		sort.Strings(tos)
		if msg := checkLocalities(tos); msg != "" {
			v.errorf(fmt.Sprintf("%s.distribute[%d].to", p, i), "%s", msg)
		}
		dp := fmt.Sprintf("%s.distribute[%d]", p, i)
		total := uint32(0)
		for loc, w := range d.To {
			if w == 0 || w > 100 {
				v.errorf(dp+".to["+loc+"]", "locality weight must be in range [1, 100]")
			}
			total += w
		}
		if total != 100 {
			v.errorf(dp+".to", "total locality weight %d != 100", total)
		}
	}
	if msg := checkLocalities(froms); msg != "" {
		v.errorf(p+".distribute", "%s", msg)
	}
	for i, f := range l.Failover {
		fp := fmt.Sprintf("%s.failover[%d]", p, i)
		if f.From == f.To {
			v.errorf(fp, "locality lb failover settings must specify different regions")
		}
		if strings.Contains(f.From, "/") || strings.Contains(f.To, "/") {
			v.errorf(fp, "locality lb failover only specify region")
		}
		if strings.Contains(f.To, "*") || strings.Contains(f.From, "*") {
			v.errorf(fp, "locality lb failover region should not contain '*' wildcard")
		}
	}
}

// checkLocalities is Istio's validateLocalities: at most one '*', last;
// no empty region/zone/subzone; no locality that an earlier one covers or
// that covers an earlier one ("*" covers a level).
func checkLocalities(locs []string) string {
	const all = "*"
	tree := map[string]map[string]map[string]bool{} // region → zone → subzone
	for _, l := range locs {
		if n := strings.Count(l, "*"); n > 1 || (n == 1 && !strings.HasSuffix(l, "*")) {
			return fmt.Sprintf("locality %s wildcard '*' number can not exceed 1 and must be in the end", l)
		}
		overlap := fmt.Sprintf("locality %s overlap with previous specified ones", l)
		if tree[all] != nil {
			return overlap
		}
		parts := strings.SplitN(l, "/", 3)
		for _, part := range parts {
			if part == "" {
				return fmt.Sprintf("locality %s must not contain empty region/zone/subzone info", l)
			}
		}
		region := parts[0]
		zones, seen := tree[region]
		switch len(parts) {
		case 1:
			if seen {
				return overlap
			}
			tree[region] = map[string]map[string]bool{all: {all: true}}
		case 2:
			zone := parts[1]
			if !seen {
				tree[region] = map[string]map[string]bool{zone: {all: true}}
				continue
			}
			if zones[all] != nil || zones[zone] != nil {
				return overlap
			}
			zones[zone] = map[string]bool{all: true}
		case 3:
			zone, sub := parts[1], parts[2]
			if !seen {
				tree[region] = map[string]map[string]bool{zone: {sub: true}}
				continue
			}
			if zones[all] != nil {
				return overlap
			}
			subs := zones[zone]
			if subs == nil {
				zones[zone] = map[string]bool{sub: true}
				continue
			}
			if subs[all] || subs[sub] {
				return overlap
			}
			subs[sub] = true
		}
	}
	return ""
}

func (v *validator) connectionPool(p string, cp *networking.ConnectionPoolSettings) {
	if cp == nil {
		return
	}
	if cp.Http == nil && cp.Tcp == nil {
		v.errorf(p, "connection pool must have at least one field")
	}
	if h := cp.Http; h != nil {
		for _, f := range []struct {
			name string
			val  int32
		}{
			{"http1MaxPendingRequests", h.Http1MaxPendingRequests}, {"http2MaxRequests", h.Http2MaxRequests},
			{"maxRequestsPerConnection", h.MaxRequestsPerConnection}, {"maxRetries", h.MaxRetries},
			{"maxConcurrentStreams", h.MaxConcurrentStreams},
		} {
			if f.val < 0 {
				v.errorf(p+".http."+f.name, "%s must be non-negative", f.name)
			}
		}
		if h.IdleTimeout != nil {
			v.duration(p+".http.idleTimeout", h.IdleTimeout)
		}
	}
	if t := cp.Tcp; t != nil {
		if t.MaxConnections < 0 {
			v.errorf(p+".tcp.maxConnections", "maxConnections must be non-negative")
		}
		if t.ConnectTimeout != nil {
			v.duration(p+".tcp.connectTimeout", t.ConnectTimeout)
		}
		if t.MaxConnectionDuration != nil {
			v.duration(p+".tcp.maxConnectionDuration", t.MaxConnectionDuration)
		}
		if t.IdleTimeout != nil {
			v.duration(p+".tcp.idleTimeout", t.IdleTimeout)
		}
		if ka := t.TcpKeepalive; ka != nil {
			if ka.Time != nil {
				v.duration(p+".tcp.tcpKeepalive.time", ka.Time)
			}
			if ka.Interval != nil {
				v.duration(p+".tcp.tcpKeepalive.interval", ka.Interval)
			}
		}
	}
}

func (v *validator) outlier(p string, o *networking.OutlierDetection) {
	if o == nil {
		return
	}
	// Istio: validateOutlierDetection.
	if o.ConsecutiveErrors != 0 { //nolint:staticcheck // the deprecated field is what is checked
		v.warnf(p+".consecutiveErrors", "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead")
	}
	if !o.SplitExternalLocalOriginErrors && o.ConsecutiveLocalOriginFailures.GetValue() > 0 {
		v.errorf(p+".consecutiveLocalOriginFailures", "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false")
	}
	if o.Interval != nil {
		v.duration(p+".interval", o.Interval)
	}
	if o.BaseEjectionTime != nil {
		v.duration(p+".baseEjectionTime", o.BaseEjectionTime)
	}
	if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
		v.errorf(p+".maxEjectionPercent", "percentage %d is not in range 0..100", o.MaxEjectionPercent)
	}
	if o.MinHealthPercent < 0 || o.MinHealthPercent > 100 {
		v.errorf(p+".minHealthPercent", "percentage %d is not in range 0..100", o.MinHealthPercent)
	}
	for i, c := range o.OutlierDetectionHttpErrorCodes {
		if c < 100 || c > 599 {
			v.errorf(fmt.Sprintf("%s.outlierDetectionHttpErrorCodes[%d]", p, i), "HTTP status %d is not in range 100-599", c)
		}
	}
}

// clientTLS follows Istio's validateTLS for DestinationRules.
func (v *validator) clientTLS(p string, t *networking.ClientTLSSettings) {
	if t == nil {
		return
	}
	// Istio: agent.ValidateTLS. It has no rule for ISTIO_MUTUAL with
	// certificate fields (they are ignored), so neither has Weft.
	files := t.ClientCertificate != "" || t.PrivateKey != "" || t.CaCertificates != "" || t.CaCrl != ""
	if t.GetInsecureSkipVerify().GetValue() {
		switch t.Mode {
		case networking.ClientTLSSettings_SIMPLE:
			if t.CaCertificates != "" || t.CredentialName != "" || t.SubjectAltNames != nil {
				v.errorf(p, "cannot specify CaCertificates or CredentialName or SubjectAltNames when InsecureSkipVerify is set true")
			}
		case networking.ClientTLSSettings_MUTUAL:
			if t.CaCertificates != "" || t.SubjectAltNames != nil {
				v.errorf(p, "cannot specify CaCertificates or SubjectAltNames when InsecureSkipVerify is set true")
			}
		}
	}
	switch t.Mode {
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
		if t.CredentialName != "" {
			if files {
				v.errorf(p, "cannot specify client certificates or CA certificate or CA CRL if credentialName is set")
			}
			return
		}
		if t.Mode == networking.ClientTLSSettings_MUTUAL {
			if t.ClientCertificate == "" {
				v.errorf(p+".clientCertificate", "client certificate required for mutual tls (or set credentialName)")
			}
			if t.PrivateKey == "" {
				v.errorf(p+".privateKey", "private key required for mutual tls (or set credentialName)")
			}
		}
	}
}

func (v *validator) gateway(g *networking.Gateway) {
	if v.r.Name != "" && !isDNSLabel(v.r.Name) {
		// Istio: gateway names are referenced as ns/name and must be labels.
		v.errorf("metadata.name", "invalid gateway name %q: must be a lower-case RFC 1123 label (no dots)", v.r.Name)
	}
	if len(g.Servers) == 0 {
		v.errorf("spec.servers", "gateway must have at least one server")
	}
	v.selector("spec.selector", g.Selector)
	names := map[string]int{}
	for i, s := range g.Servers {
		p := fmt.Sprintf("spec.servers[%d]", i)
		v.server(p, s)
		if s.Port != nil && s.Port.Name != "" {
			if j, dup := names[s.Port.Name]; dup {
				v.errorf(p+".port.name", "port names in servers must be unique: duplicate name %s (also spec.servers[%d])", s.Port.Name, j)
			}
			names[s.Port.Name] = i
		}
		// Istio: ValidateGateway warns, never rejects, here.
		if s.Port != nil && !isHTTPProtocol(s.Port.Protocol) && s.GetTls().GetHttpsRedirect() {
			v.warnf(p+".tls.httpsRedirect", "tls.httpsRedirect should only be used with http servers")
		}
	}
}

func (v *validator) server(p string, s *networking.Server) {
	if len(s.Hosts) == 0 {
		v.errorf(p+".hosts", "server config must contain at least one host")
	}
	for i, h := range s.Hosts {
		v.nsHost(fmt.Sprintf("%s.hosts[%d]", p, i), h, true)
	}
	if s.Port == nil {
		v.errorf(p+".port", "port is required")
		return
	}
	// Istio: validateServerPort and validateServerBind. A Unix socket
	// bind takes port 0 (and only 0).
	unix := strings.HasPrefix(s.Bind, "unix://")
	if s.Port.Number > 0 || !unix {
		v.port(p+".port.number", int64(s.Port.Number))
	}
	if unix {
		v.unixAddress(p+".bind", strings.TrimPrefix(s.Bind, "unix://"))
		if s.Port.Number != 0 {
			v.errorf(p+".port.number", "port number must be 0 for unix domain socket")
		}
	}
	v.protocol(p+".port.protocol", s.Port.Protocol, true)
	if s.Port.TargetPort > 0 { //nolint:staticcheck // the deprecated field is what is checked
		v.errorf(p+".port.targetPort", "targetPort has no impact on Gateways")
	}
	if s.Port.Name == "" {
		v.errorf(p+".port.name", "port name must be set")
	}
	if s.Bind != "" && !isIP(s.Bind) && !unix {
		v.errorf(p+".bind", "bind %q must be an IP address or unix:// path", s.Bind)
	}
	proto := strings.ToUpper(s.Port.Protocol)
	tls := s.Tls
	switch {
	case isTLSProtocol(proto) && tls == nil:
		v.errorf(p+".tls", "server must have TLS settings for HTTPS/TLS protocols")
	case !isTLSProtocol(proto) && tls != nil:
		// A plain HTTP server may only carry httpsRedirect.
		if !isHTTPProtocol(proto) || !tls.HttpsRedirect || tls.ServerCertificate != "" || tls.PrivateKey != "" ||
			tls.CaCertificates != "" || tls.CredentialName != "" {
			v.errorf(p+".tls", "server cannot have TLS settings for plain text %s ports (only httpsRedirect)", proto)
		}
		return
	}
	if tls == nil {
		return
	}
	tp := p + ".tls"
	// Istio: validateTLSOptions.
	if (tls.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_0 || tls.MinProtocolVersion == networking.ServerTLSSettings_TLSV1_1) && len(tls.CipherSuites) == 0 {
		v.warnf(tp+".minProtocolVersion", "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers.")
	}
	seenCipher := map[string]bool{}
	for i, c := range tls.CipherSuites {
		if seenCipher[c] {
			v.warnf(fmt.Sprintf("%s.cipherSuites[%d]", tp, i), "ignoring duplicate cipher suites: [%s]", c)
		}
		seenCipher[c] = true
	}
	sources := 0
	for _, set := range []bool{tls.ServerCertificate != "" && tls.PrivateKey != "", tls.CredentialName != "", len(tls.CredentialNames) > 0, len(tls.TlsCertificates) > 0} {
		if set {
			sources++
		}
	}
	if sources > 1 && tls.Mode != networking.ServerTLSSettings_ISTIO_MUTUAL {
		v.errorf(tp, "only one of credential_name, credential_names, server_certificate/private_key, tls_certificates should be specified")
	}
	if tls.CaCrl != "" && tls.Mode != networking.ServerTLSSettings_ISTIO_MUTUAL {
		if tls.CredentialName != "" {
			v.errorf(tp+".caCrl", "CRL is not supported with credentialName. CRL has to be specified in the credential")
		}
		if tls.Mode == networking.ServerTLSSettings_SIMPLE {
			v.errorf(tp+".caCrl", "CRL is not supported with SIMPLE TLS")
		}
	}
	switch tls.Mode {
	case networking.ServerTLSSettings_ISTIO_MUTUAL:
		if tls.ServerCertificate != "" || tls.PrivateKey != "" || tls.CaCertificates != "" || tls.CredentialName != "" ||
			len(tls.TlsCertificates) > 0 || len(tls.CredentialNames) > 0 {
			v.errorf(tp, "ISTIO_MUTUAL TLS cannot have associated server certificate, private key, CA bundle, tlsCertificates or credentialName(s)")
		}
	case networking.ServerTLSSettings_SIMPLE, networking.ServerTLSSettings_MUTUAL, networking.ServerTLSSettings_OPTIONAL_MUTUAL:
		mode := tls.Mode.String()
		if tls.CredentialName != "" || len(tls.CredentialNames) > 0 || len(tls.TlsCertificates) > 0 {
			return // certificates come from a Secret
		}
		if tls.ServerCertificate == "" {
			v.errorf(tp+".serverCertificate", "%s TLS requires a server certificate (or credentialName)", mode)
		}
		if tls.PrivateKey == "" {
			v.errorf(tp+".privateKey", "%s TLS requires a private key (or credentialName)", mode)
		}
		if tls.Mode != networking.ServerTLSSettings_SIMPLE && tls.CaCertificates == "" {
			v.errorf(tp+".caCertificates", "%s TLS requires a client CA bundle (or credentialName)", mode)
		}
	case networking.ServerTLSSettings_PASSTHROUGH, networking.ServerTLSSettings_AUTO_PASSTHROUGH:
		if proto == "HTTPS" && tls.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
			v.errorf(tp+".mode", "AUTO_PASSTHROUGH requires protocol TLS")
		}
		if tls.CaCrl != "" || tls.ServerCertificate != "" || tls.PrivateKey != "" || tls.CaCertificates != "" ||
			len(tls.TlsCertificates) > 0 || tls.CredentialName != "" || len(tls.CredentialNames) > 0 {
			v.warnf(tp, "%v mode does not use certificates, they will be ignored", tls.Mode)
		}
	}
}

// nsHost validates a "namespace/host" entry of a Gateway server or a
// Sidecar egress listener. Gateways also accept a bare host; sidecars
// additionally accept "~" as namespace.
func (v *validator) nsHost(p, h string, gw bool) {
	ns, host, ok := strings.Cut(h, "/")
	if !ok {
		if !gw {
			v.errorf(p, "host %q must be of form namespace/dnsName", h)
			return
		}
		ns, host = "*", h
	}
	if ns == "" || host == "" {
		v.errorf(p, "config namespace and dnsName in host entry cannot be empty")
		return
	}
	if ns != "*" && ns != "." && !(ns == "~" && !gw) && !isDNSLabel(ns) {
		v.errorf(p, "invalid namespace value %q in %s host %q", ns, map[bool]string{true: "gateway", false: "sidecar"}[gw], h)
	}
	if host == "*" {
		return
	}
	if gw && isIP(host) {
		return
	}
	if !strings.Contains(host, ".") {
		v.errorf(p, "short names (non FQDN) are not allowed: %q", host)
		return
	}
	if msg := checkWildcardHost(host); msg != "" {
		v.errorf(p, "%s", msg)
	}
}

func (v *validator) serviceEntry(se *networking.ServiceEntry) {
	if se.WorkloadSelector != nil {
		v.selector("spec.workloadSelector.labels", se.WorkloadSelector.Labels)
		if len(se.WorkloadSelector.Labels) == 0 {
			v.warnf("spec.workloadSelector", "service entry: workload selector specified without labels, will be applied to all services in namespace")
		}
		if len(se.Endpoints) > 0 {
			v.errorf("spec.workloadSelector", "only one of workloadSelector or endpoints is allowed in a ServiceEntry")
		}
	}
	if len(se.Hosts) == 0 {
		v.errorf("spec.hosts", "service entry must have at least one host")
	}
	for i, h := range se.Hosts {
		p := fmt.Sprintf("spec.hosts[%d]", i)
		if h == "*" {
			v.errorf(p, "invalid host *: a ServiceEntry cannot match every host")
			continue
		}
		if msg := checkWildcardHost(h); msg != "" {
			v.errorf(p, "%s", msg)
		} else if se.Resolution != networking.ServiceEntry_DYNAMIC_DNS && strings.Contains(h, "*") && !strings.HasPrefix(h, "*.") {
			// Istio: agent.ValidatePartialWildCard, wrapped as a warning.
			v.warnf(p, "partial wildcard %q not allowed", h)
		}
	}
	cidr := false
	for i, a := range se.Addresses {
		cidr = cidr || strings.Contains(a, "/")
		v.subnet(fmt.Sprintf("spec.addresses[%d]", i), a)
	}
	res := se.Resolution
	if cidr && res != networking.ServiceEntry_NONE && res != networking.ServiceEntry_STATIC {
		v.errorf("spec.addresses", "CIDR addresses are allowed only for NONE/STATIC resolution types")
	}
	// Istio dropped "at least one port": a ServiceEntry without ports is
	// accepted (pkg/config/validation ValidateServiceEntry).
	portNames := map[string]bool{}
	portNums := map[uint32]bool{}
	for i, sp := range se.Ports {
		p := fmt.Sprintf("spec.ports[%d]", i)
		v.port(p+".number", int64(sp.Number))
		v.protocol(p+".protocol", sp.Protocol, false)
		if sp.Name == "" {
			v.errorf(p+".name", "port name must be set")
		} else if !isDNSLabel(sp.Name) {
			v.errorf(p+".name", "invalid port name %q: must be a lower-case RFC 1123 label", sp.Name)
		}
		if sp.TargetPort != 0 {
			v.port(p+".targetPort", int64(sp.TargetPort))
		}
		if portNames[sp.Name] && sp.Name != "" {
			v.errorf(p+".name", "service entry port name %q already defined", sp.Name)
		}
		if portNums[sp.Number] {
			v.errorf(p+".number", "service entry port %d already defined", sp.Number)
		}
		portNames[sp.Name], portNums[sp.Number] = true, true
	}
	switch res {
	case networking.ServiceEntry_NONE:
		if len(se.Endpoints) > 0 {
			v.errorf("spec.endpoints", "no endpoints should be provided for resolution type NONE")
		}
		if se.WorkloadSelector != nil {
			v.warnf("spec.workloadSelector", "workloadSelector should not be set when resolution mode is NONE")
		}
	case networking.ServiceEntry_STATIC:
		// Istio accepts STATIC without endpoints (WorkloadEntries may be
		// added later); Weft used to reject it.
		unix := false
		for i, ep := range se.Endpoints {
			p := fmt.Sprintf("spec.endpoints[%d]", i)
			if strings.HasPrefix(ep.Address, "unix://") {
				unix = true
				v.unixAddress(p+".address", strings.TrimPrefix(ep.Address, "unix://"))
				if len(ep.Ports) > 0 {
					v.errorf(p+".ports", "unix endpoint %s must not include ports", ep.Address)
				}
			} else if !isIP(ep.Address) {
				v.errorf(p+".address", "endpoint address %q is not a valid IP address (resolution STATIC)", ep.Address)
			}
			v.endpoint(p, ep, portNames)
		}
		if unix && len(se.Ports) != 1 {
			v.errorf("spec.ports", "exactly 1 service port required for unix endpoints")
		}
	case networking.ServiceEntry_DYNAMIC_DNS:
		// Istio's DYNAMIC_DNS rules: wildcard hosts only, no addresses or
		// endpoints, HTTP/TLS/GRPC/HTTP2 ports.
		for i, h := range se.Hosts {
			if !strings.HasPrefix(h, "*") {
				v.errorf(fmt.Sprintf("spec.hosts[%d]", i), "host must be wildcarded for resolution mode DYNAMIC_DNS")
			}
		}
		if len(se.Addresses) > 0 {
			v.errorf("spec.addresses", "addresses cannot be set for resolution type DYNAMIC_DNS")
		}
		if len(se.Endpoints) > 0 {
			v.errorf("spec.endpoints", "endpoints cannot be set for resolution type DYNAMIC_DNS")
		}
		for i, sp := range se.Ports {
			switch strings.ToUpper(sp.Protocol) {
			case "HTTP", "TLS", "GRPC", "HTTP2":
			default:
				v.errorf(fmt.Sprintf("spec.ports[%d].protocol", i), "only HTTP, TLS, GRPC, and HTTP2 protocols are supported for resolution type DYNAMIC_DNS")
			}
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		if len(se.Endpoints) == 0 {
			for i, h := range se.Hosts {
				if strings.HasPrefix(h, "*") {
					v.errorf(fmt.Sprintf("spec.hosts[%d]", i), "hosts must be FQDN if no endpoints are provided for resolution mode %s (wildcard %q)", res, h)
				}
			}
		}
		if res == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.Endpoints) > 1 {
			v.errorf("spec.endpoints", "there must only be 0 or 1 endpoint for resolution mode DNS_ROUND_ROBIN")
		}
		for i, ep := range se.Endpoints {
			p := fmt.Sprintf("spec.endpoints[%d]", i)
			if !isIP(ep.Address) && checkFQDN(ep.Address) != "" {
				v.errorf(p+".address", "endpoint address %q is not a valid FQDN or an IP address", ep.Address)
			}
			v.endpoint(p, ep, portNames)
		}
	}
	// Plain TCP cannot tell several hosts apart, unless Istio ignores the
	// hosts (resolution NONE).
	if res != networking.ServiceEntry_NONE && len(se.Hosts) > 1 {
		for _, sp := range se.Ports {
			if !isHTTPProtocol(sp.Protocol) && !isTLSProtocol(sp.Protocol) {
				v.errorf("spec.hosts", "multiple hosts provided with non-HTTP, non-TLS ports")
				break
			}
		}
	}
	v.exportTo("spec.exportTo", se.ExportTo, true)
}

func (v *validator) endpoint(p string, ep *networking.WorkloadEntry, portNames map[string]bool) {
	for name, n := range ep.Ports {
		pp := p + ".ports[" + name + "]"
		if !portNames[name] {
			v.errorf(pp, "endpoint port %q is not defined by the service entry", name)
		}
		v.port(pp, int64(n))
	}
	v.labels(p+".labels", ep.Labels)
}

func (v *validator) unixAddress(p, addr string) {
	switch {
	case addr == "":
		v.errorf(p, "unix address must not be empty")
	case strings.HasPrefix(addr, "@"):
	case !path.IsAbs(addr) || strings.HasSuffix(addr, "/"):
		v.errorf(p, "%s is not an absolute path to a file", addr)
	}
}

// workloadEntry validates a WorkloadEntry spec; in a WorkloadGroup
// template the address is filled in later, so it is optional there.
// workloadEntry is Istio's validateWorkloadEntry for a WorkloadEntry
// (FQDN addresses allowed).
func (v *validator) workloadEntry(p string, we *networking.WorkloadEntry, needAddress bool) {
	switch {
	case we.Address == "":
		if needAddress {
			if we.Network == "" {
				v.errorf(p+".address", "address must be set (or network, for a workload behind a gateway)")
			} else {
				v.warnf(p+".address", "address is unset with network %q", we.Network)
			}
		}
	case strings.HasPrefix(we.Address, "unix://"):
		v.unixAddress(p+".address", strings.TrimPrefix(we.Address, "unix://"))
		if len(we.Ports) > 0 {
			v.errorf(p+".ports", "unix endpoint %s must not include ports", we.Address)
		}
	case isIP(we.Address):
	default:
		if msg := checkFQDN(we.Address); msg != "" {
			v.errorf(p+".address", "address %q is not an IP address, a hostname or unix:// path", we.Address)
		}
	}
	for name, n := range we.Ports {
		if !isDNSLabel(name) {
			v.errorf(p+".ports["+name+"]", "invalid port name: %s", name)
		}
		v.port(p+".ports["+name+"]", int64(n))
	}
	v.labels(p+".labels", we.Labels)
}

// workloadGroup is Istio's ValidateWorkloadGroup: a template is required
// and the metadata labels must be valid; the template itself is not
// validated as a WorkloadEntry (its address and more are filled in later).
func (v *validator) workloadGroup(wg *networking.WorkloadGroup) {
	if wg.Template == nil {
		v.errorf("spec.template", "template is required")
		return
	}
	if wg.Metadata != nil {
		v.labels("spec.metadata.labels", wg.Metadata.Labels)
	}
}

func (v *validator) sidecar(sc *networking.Sidecar) {
	// Istio: ValidateSidecar (pkg/config/validation/validation.go).
	if sc.WorkloadSelector != nil {
		v.selector("spec.workloadSelector.labels", sc.WorkloadSelector.Labels)
		if len(sc.WorkloadSelector.Labels) == 0 {
			v.warnf("spec.workloadSelector", "sidecar: workload selector specified without labels, will be applied to all services in namespace")
		}
	}
	if len(sc.Egress) == 0 && len(sc.Ingress) == 0 && sc.OutboundTrafficPolicy == nil && sc.InboundConnectionPool == nil {
		v.errorf("spec", "sidecar: empty configuration provided")
		return
	}
	ingressPorts := map[uint32]bool{}
	for i, in := range sc.Ingress {
		p := fmt.Sprintf("spec.ingress[%d]", i)
		if in.Port == nil {
			v.errorf(p+".port", "sidecar: port is required for ingress listeners")
			continue
		}
		v.sidecarPort(p+".port", in.Port)
		if in.Port.TargetPort > 0 { //nolint:staticcheck // the deprecated field is what is checked
			v.errorf(p+".port.targetPort", "targetPort has no impact on Sidecars")
		}
		if in.Bind != "" && !isIP(in.Bind) {
			v.errorf(p+".bind", "%q is not a valid IP", in.Bind)
		}
		if ingressPorts[in.Port.Number] {
			v.errorf(p+".port.number", "sidecar: ports on IP bound listeners must be unique")
		}
		ingressPorts[in.Port.Number] = true
		if in.DefaultEndpoint != "" {
			v.defaultEndpoint(p+".defaultEndpoint", in.DefaultEndpoint)
		}
		if t := in.Tls; t != nil {
			tp := p + ".tls"
			if len(t.SubjectAltNames) > 0 {
				v.errorf(tp+".subjectAltNames", "sidecar: subjectAltNames is not supported in ingress tls")
			}
			if t.HttpsRedirect {
				v.errorf(tp+".httpsRedirect", "sidecar: httpsRedirect is not supported")
			}
			if t.CredentialName != "" {
				v.errorf(tp+".credentialName", "sidecar: credentialName is not currently supported")
			}
			if t.Mode == networking.ServerTLSSettings_ISTIO_MUTUAL || t.Mode == networking.ServerTLSSettings_AUTO_PASSTHROUGH {
				v.errorf(tp+".mode", "configuration is invalid: cannot set mode to %s in sidecar ingress tls", t.Mode)
			}
			if !isTLSProtocol(in.Port.Protocol) {
				v.errorf(tp, "server cannot have TLS settings for non HTTPS/TLS ports")
			}
		}
		v.connectionPool(p+".connectionPool", in.ConnectionPool)
		if in.ConnectionPool.GetHttp() != nil && !isHTTPProtocol(in.Port.Protocol) {
			v.warnf(p+".connectionPool.http", "sidecar: HTTP connection pool settings are configured for port %d (%q) but its protocol is not HTTP (%s); only TCP settings will apply",
				in.Port.Number, in.Port.Name, in.Port.Protocol)
		}
	}
	egressPorts := map[uint32]bool{}
	sockets := map[string]bool{}
	catchAll := false
	for i, eg := range sc.Egress {
		p := fmt.Sprintf("spec.egress[%d]", i)
		if eg.Port == nil {
			switch {
			case catchAll:
				v.errorf(p, "sidecar: egress can have only one listener with empty port")
				continue
			case i != len(sc.Egress)-1:
				v.errorf(p, "sidecar: the egress listener with empty port should be the last listener in the list")
			default:
				catchAll = true
			}
		} else {
			if eg.Port.TargetPort > 0 { //nolint:staticcheck // the deprecated field is what is checked
				v.errorf(p+".port.targetPort", "targetPort has no impact on Sidecars")
			}
			if eg.Port.Number == 0 {
				// Port 0 is a listener on a Unix domain socket (bind).
				if eg.Port.Name != "" && !isDNSLabel(eg.Port.Name) {
					v.errorf(p+".port.name", "invalid port name %q", eg.Port.Name)
				}
				v.protocol(p+".port.protocol", eg.Port.Protocol, false)
				if !strings.HasPrefix(eg.Bind, "unix://") {
					v.errorf(p+".bind", "sidecar: ports with 0 value must have a unix domain socket bind address")
				} else {
					v.unixAddress(p+".bind", strings.TrimPrefix(eg.Bind, "unix://"))
				}
				if eg.CaptureMode != networking.CaptureMode_DEFAULT && eg.CaptureMode != networking.CaptureMode_NONE {
					v.errorf(p+".captureMode", "sidecar: captureMode must be DEFAULT/NONE for unix domain socket listeners")
				}
				if sockets[eg.Bind] {
					v.errorf(p+".bind", "sidecar: unix domain socket values for listeners must be unique")
				}
				sockets[eg.Bind] = true
			} else {
				v.sidecarPort(p+".port", eg.Port)
				if egressPorts[eg.Port.Number] {
					v.errorf(p+".port.number", "sidecar: ports on IP bound listeners must be unique")
				}
				egressPorts[eg.Port.Number] = true
				if eg.Bind != "" && !isIP(eg.Bind) {
					v.errorf(p+".bind", "%q is not a valid IP", eg.Bind)
				}
			}
		}
		if len(eg.Hosts) == 0 {
			v.errorf(p+".hosts", "sidecar: egress listener must contain at least one host")
		}
		byNS := map[string]map[string]bool{}
		for j, h := range eg.Hosts {
			hp := fmt.Sprintf("%s.hosts[%d]", p, j)
			if ns, name, ok := strings.Cut(h, "/"); ok && !strings.HasPrefix(ns, "~") {
				if ns == "." {
					ns = v.r.Namespace
				}
				if byNS[ns] == nil {
					byNS[ns] = map[string]bool{}
				}
				if (name != "*" && (byNS[ns][name] || byNS[ns]["*"])) || (name == "*" && len(byNS[ns]) > 0) {
					v.warnf(hp, "duplicated egress host: %s", h)
				}
				byNS[ns][name] = true
			}
			v.nsHost(hp, h, false)
		}
		if byNS["*"]["*"] && len(byNS) != 1 {
			v.warnf(p+".hosts", "`*/*` host select all resources, no other hosts can be added")
		}
	}
	// Istio's validateSidecarOutboundTrafficPolicy: egressProxy only with
	// ALLOW_ANY (nothing else is checked then), an FQDN host (no
	// wildcard), a port, then the destination's own rules.
	if tp := sc.OutboundTrafficPolicy; tp != nil && tp.EgressProxy != nil {
		const ep = "spec.outboundTrafficPolicy.egressProxy"
		switch {
		case tp.Mode != networking.OutboundTrafficPolicy_ALLOW_ANY:
			v.errorf(ep, "egressProxy must be set only with ALLOW_ANY outboundTrafficPolicy mode")
		case checkFQDN(tp.EgressProxy.Host) != "":
			v.errorf(ep+".host", "%s", checkFQDN(tp.EgressProxy.Host))
		case tp.EgressProxy.Port == nil:
			v.errorf(ep+".port", "egressProxy port is required")
		default:
			v.destination(ep, tp.EgressProxy)
		}
	}
	v.connectionPool("spec.inboundConnectionPool", sc.InboundConnectionPool)
}

func (v *validator) sidecarPort(p string, sp *networking.SidecarPort) {
	v.port(p+".number", int64(sp.Number))
	v.protocol(p+".protocol", sp.Protocol, false)
	if sp.Name != "" && !isDNSLabel(sp.Name) {
		v.errorf(p+".name", "invalid port name %q", sp.Name)
	}
}

// defaultEndpoint accepts 127.0.0.1:PORT, 0.0.0.0:PORT, [::1]:PORT, :PORT
// and unix:// paths, as Istio's Sidecar validation does.
func (v *validator) defaultEndpoint(p, ep string) {
	if strings.HasPrefix(ep, "unix://") {
		v.unixAddress(p, strings.TrimPrefix(ep, "unix://"))
		return
	}
	i := strings.LastIndex(ep, ":")
	if i < 0 {
		v.errorf(p, "defaultEndpoint %q must be of form 127.0.0.1:<port>, 0.0.0.0:<port> or unix://<path>", ep)
		return
	}
	host, port := ep[:i], ep[i+1:]
	switch host {
	case "", "127.0.0.1", "0.0.0.0", "[::1]", "[::]":
	default:
		v.errorf(p, "defaultEndpoint %q must be of form 127.0.0.1:<port>, 0.0.0.0:<port> or unix://<path>", ep)
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		v.errorf(p, "defaultEndpoint port %q is not a number", port)
		return
	}
	v.port(p, int64(n))
}

// policySelector validates a security/telemetry selector and its
// exclusivity with targetRef(s).
func (v *validator) policySelector(sel *typev1beta1.WorkloadSelector, targetRef *typev1beta1.PolicyTargetReference, targetRefs []*typev1beta1.PolicyTargetReference) {
	if sel != nil {
		v.selector("spec.selector.matchLabels", sel.MatchLabels)
		v.emptySelector("spec.selector", sel.MatchLabels)
	}
	if sel != nil && (targetRef != nil || len(targetRefs) > 0) {
		v.errorf("spec.selector", "only one of selector or targetRef(s) may be set")
	}
	if targetRef != nil && len(targetRefs) > 0 {
		v.errorf("spec.targetRefs", "only one of targetRef or targetRefs may be set")
	}
	refs := targetRefs
	if targetRef != nil {
		refs = append(refs, targetRef)
	}
	for i, r := range refs {
		if r.Kind == "" || r.Name == "" {
			v.errorf(fmt.Sprintf("spec.targetRefs[%d]", i), "targetRef needs kind and name")
		}
	}
}

// emptySelector is Istio's validateWorkloadSelector warning: a selector
// without labels selects every workload of the namespace.
func (v *validator) emptySelector(p string, labels map[string]string) {
	if len(labels) == 0 {
		v.warnf(p, "workload selector specified without labels")
	}
}
