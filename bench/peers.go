package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Peer proxies, from Debian packages.
const (
	nginxBin   = "/usr/sbin/nginx"
	haproxyBin = "/usr/sbin/haproxy"
	caddyBin   = "/usr/bin/caddy"
)

// topology is one way for the client to reach the backend.
type topology struct {
	Name   string
	URL    string // HTTP/1.1 target of the client
	H2CURL string // h2c target ("" when the first hop cannot take h2c)
	Host   string // Host header the client sends
	Procs  []*proc
	// Hops describes the protocol on each hop, for the report.
	Hops string
	// Verified says how the harness checked the hop between the pair is
	// (or is not) mutual TLS.
	Verified string
	stop     func()
	// anonKB is each process's largest RssAnon (private memory) seen at
	// the end of a load cell: VmHWM also counts the binary's pages, which
	// every sidecar of one image shares on a node.
	anonKB map[string]int64
}

// noteAnon records each process's private memory now (end of a cell,
// before its heap is given back).
func (t *topology) noteAnon() {
	if t.anonKB == nil {
		t.anonKB = map[string]int64{}
	}
	for _, p := range t.Procs {
		t.anonKB[p.name] = max(t.anonKB[p.name], p.memKB("RssAnon"))
	}
}

// close stops the proxies, then what they depend on (Weft's control
// plane), so no proxy outlives it retrying.
func (t *topology) close() {
	for _, p := range t.Procs {
		p.stop()
	}
	if t.stop != nil {
		t.stop()
	}
}

// pair starts the server-side proxy then the client-side one, each made by
// mk(dir, label, listen ports, upstream, side) and checks the path end to
// end. With pki the hop between the two proxies is mutual TLS: the server
// side listens with TLS and requires the client certificate, the client
// side originates TLS with it.
type proxyStarter func(dir, label string, h1, h2c int, upstream string, s side) (*proc, error)

// side says which end of the pair a proxy is and, for a TLS pair, its PKI.
type side struct {
	server bool
	pki    *pairPKI // nil: plaintext between the pair
}

// h2cSame means the client-side proxy takes h2c on its HTTP/1.1 port.
func startPair(ctx context.Context, name, dir, backend string, mk proxyStarter, h2cSame bool, hops string, tlsPair bool) (*topology, error) {
	host := "127.0.0.1"
	ports := make([]int, 4)
	for i := range ports {
		p, err := freePort(host)
		if err != nil {
			return nil, err
		}
		ports[i] = p
	}
	// Free ports are picked up front; a clash is unlikely and shows as a
	// start error.
	sdir := filepath.Join(dir, name+"-server")
	cdir := filepath.Join(dir, name+"-client")
	for _, d := range []string{sdir, cdir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	var pki *pairPKI
	if tlsPair {
		var err error
		if pki, err = newPairPKI(filepath.Join(dir, name+"-pki")); err != nil {
			return nil, err
		}
	}
	srvSide, err := mk(sdir, name+"-server-side", ports[0], 0, backend, side{server: true, pki: pki})
	if err != nil {
		return nil, err
	}
	cliSide, err := mk(cdir, name+"-client-side", ports[2], ports[3], host+":"+strconv.Itoa(ports[0]), side{pki: pki})
	if err != nil {
		srvSide.stop()
		return nil, err
	}
	t := &topology{
		Name:   name,
		URL:    fmt.Sprintf("http://%s:%d/", host, ports[2]),
		H2CURL: fmt.Sprintf("http://%s:%d/", host, ports[3]),
		Host:   "server:8080",
		Procs:  []*proc{cliSide, srvSide},
		Hops:   hops,
	}
	if h2cSame {
		t.H2CURL = t.URL
	}
	if pki != nil {
		if t.Verified, err = checkPairTLS(ctx, fmt.Sprintf("%s:%d", host, ports[0]), pki, srvSide, 15*time.Second); err != nil {
			t.close()
			return nil, fmt.Errorf("server-side %s: %w", name, err)
		}
	} else if err := waitHTTP(ctx, fmt.Sprintf("http://%s:%d/", host, ports[0]), t.Host, srvSide, 15*time.Second); err != nil {
		t.close()
		return nil, fmt.Errorf("server-side %s: %w", name, err)
	}
	if err := waitHTTP(ctx, t.URL, t.Host, cliSide, 15*time.Second); err != nil {
		t.close()
		return nil, fmt.Errorf("client-side %s: %w", name, err)
	}
	return t, nil
}

// nginx: two workers (like Envoy's default concurrency of 2 in Istio
// sidecars), keep-alive upstream pool, no access log. nginx 1.22 takes
// h2c only on a listener of its own ("listen … http2" without ssl).
//
// TLS pair: the server side listens with ssl, TLS 1.3 only, and requires a
// client certificate of the pair's CA ("ssl_verify_client on"), with a
// session cache and tickets; the client side proxies to https with its
// client certificate, verifies the server's ("proxy_ssl_verify") and
// reuses sessions ("proxy_ssl_session_reuse", nginx's default) on top of
// the keep-alive pool.
func startNginx(dir, label string, h1, h2c int, upstream string, sd side) (*proc, error) {
	listenTLS, scheme, upstreamTLS := "", "http", ""
	if sd.pki != nil && sd.server {
		listenTLS = fmt.Sprintf(` ssl;
    ssl_certificate %s;
    ssl_certificate_key %s;
    ssl_client_certificate %s;
    ssl_verify_client on;
    ssl_protocols TLSv1.3;
    ssl_session_cache shared:pair:10m;
    ssl_session_tickets on`, sd.pki.ServerCert, sd.pki.ServerKey, sd.pki.CA)
	}
	if sd.pki != nil && !sd.server {
		scheme = "https"
		upstreamTLS = fmt.Sprintf(`      proxy_ssl_certificate %s;
      proxy_ssl_certificate_key %s;
      proxy_ssl_trusted_certificate %s;
      proxy_ssl_verify on;
      proxy_ssl_name %s;
      proxy_ssl_server_name on;
      proxy_ssl_protocols TLSv1.3;
      proxy_ssl_session_reuse on;
`, sd.pki.ClientCert, sd.pki.ClientKey, sd.pki.CA, pairSNI)
	}
	h2cListen := ""
	if h2c != 0 {
		h2cListen = fmt.Sprintf("    listen 127.0.0.1:%d http2;\n", h2c)
	}
	conf := nginxConf(dir, upstream, fmt.Sprintf(`    listen 127.0.0.1:%[1]d%[3]s;
%[2]s    location / {
      proxy_pass %[4]s://up;
%[5]s
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_buffering off;
    }
`, h1, h2cListen, listenTLS, scheme, upstreamTLS))
	path := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return start(dir, label, nil, nginxBin, "-p", dir, "-c", path, "-e", "stderr")
}

// nginxConf is the nginx configuration every nginx of the bench runs:
// two workers, no access log, temp paths under dir, and a keep-alive pool
// "up" to upstream; server is the server block's body.
func nginxConf(dir, upstream, server string) string {
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes 2;
user root;
pid %[1]s/nginx.pid;
error_log stderr warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  keepalive_requests 1000000;
  upstream up {
    server %[2]s;
    keepalive 512;
    keepalive_requests 1000000;
  }
  server {
%[3]s  }
}
`, dir, upstream, server)
}

// haproxyConf is the HAProxy configuration every HAProxy of the bench
// runs: two threads, HTTP mode, keep-alive and connection reuse; bind and
// server are the frontend's bind line(s) and the backend's server line.
func haproxyConf(bind, server string) string {
	return fmt.Sprintf(`global
  nbthread 2
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 60s
  http-reuse always
frontend fe
%s  default_backend be
backend be
  server s1 %s
`, bind, server)
}

// HAProxy: two threads, HTTP mode with keep-alive and connection reuse to
// the upstream; h2c on its own bind line ("proto h2").
//
// TLS pair: the server side's bind has "ssl … verify required" with the
// pair's CA, TLS 1.3 only; the client side's server line has "ssl" with
// its client certificate, verifies the server's, and keeps HAProxy's
// default TLS session reuse.
func startHAProxy(dir, label string, h1, h2c int, upstream string, sd side) (*proc, error) {
	bindTLS, serverTLS := "", ""
	if sd.pki != nil && sd.server {
		bindTLS = fmt.Sprintf(" ssl crt %s ca-file %s verify required ssl-min-ver TLSv1.3", sd.pki.ServerBundle, sd.pki.CA)
	}
	if sd.pki != nil && !sd.server {
		serverTLS = fmt.Sprintf(" ssl crt %s ca-file %s verify required verifyhost %s sni str(%s) ssl-min-ver TLSv1.3", sd.pki.ClientBundle, sd.pki.CA, pairSNI, pairSNI)
	}
	h2cBind := ""
	if h2c != 0 {
		h2cBind = fmt.Sprintf("  bind 127.0.0.1:%d proto h2\n", h2c)
	}
	conf := haproxyConf(fmt.Sprintf("  bind 127.0.0.1:%d%s\n%s", h1, bindTLS, h2cBind), upstream+serverTLS)
	path := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	return start(dir, label, nil, haproxyBin, "-f", path, "-db")
}

// Caddy: reverse_proxy with its keep-alive pool; h1 and h2c on one port.
// Caddy keeps the client's Host header by default.
func startCaddy(dir, label string, h1, _ int, upstream string, _ side) (*proc, error) {
	conf := fmt.Sprintf(`{
	admin off
	auto_https off
	servers {
		protocols h1 h2c
	}
}
http://:%d {
	bind 127.0.0.1
	reverse_proxy %s {
		transport http {
			keepalive 60s
			keepalive_idle_conns 512
		}
	}
}
`, h1, upstream)
	path := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(path, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	env := []string{"HOME=" + dir, "XDG_DATA_HOME=" + dir, "XDG_CONFIG_HOME=" + dir}
	return start(dir, label, env, caddyBin, "run", "--config", path, "--adapter", "caddyfile")
}
