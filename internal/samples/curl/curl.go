// Package curl is a small curl for sample clients (Istio's tasks exec curl
// in a "curl"/"sleep" pod): the flags those tasks use, curl's output
// formats (-I/-i/-D status and header lines, -w write-out variables) and
// curl's exit codes (6 resolve, 7 connect, 28 timeout, 35 TLS handshake,
// 52 empty reply, 56 receive failure, 60 certificate), so task scripts
// translate line for line. It honours HTTP_PROXY/HTTPS_PROXY/NO_PROXY, or
// an explicit proxy, which is how an app reaches its sidecar in explicit
// mode.
package curl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// Options are curl's flags that the samples support.
type Options struct {
	URL            string
	Method         string   // -X
	Headers        []string // -H "Name: value"
	Data           []string // -d (joined with &; @file reads a file)
	Proxy          string   // -x/--proxy host:port or URL; "" uses the environment
	Silent         bool     // -s
	ShowError      bool     // -S
	Output         string   // -o FILE ("" stdout)
	WriteOut       string   // -w FORMAT
	Head           bool     // -I
	Include        bool     // -i
	DumpHeader     string   // -D FILE ("-" stdout)
	Location       bool     // -L
	MaxTime        time.Duration
	ConnectTimeout time.Duration
	Insecure       bool     // -k
	CACert         string   // --cacert FILE
	Cert, Key      string   // --cert/--key FILES
	Resolve        []string // --resolve host:port:addr
	Fail           bool     // -f: exit 22 on status >= 400
	Cookie         string   // -b "k=v; …" or a cookie file
	CookieJar      string   // -c FILE: write cookies here after the transfer
}

// Exit codes, as curl's.
const (
	ExitOK           = 0
	ExitHTTPError    = 22
	ExitUsage        = 2
	ExitResolve      = 6
	ExitConnect      = 7
	ExitWrite        = 23
	ExitTimeout      = 28
	ExitTLS          = 35
	ExitTooManyRedir = 47
	ExitEmptyReply   = 52
	ExitRecv         = 56
	ExitCert         = 60
	ExitFile         = 26
)

// Run performs the transfer and returns curl's exit code. Body and
// requested headers go to stdout (or files), errors to stderr.
func Run(ctx context.Context, o Options, stdout, stderr io.Writer) int {
	start := time.Now()
	res := &result{}
	code := run(ctx, o, stdout, res)
	if code != ExitOK && (!o.Silent || o.ShowError) && res.msg != "" {
		fmt.Fprintf(stderr, "curl: (%d) %s\n", code, res.msg)
	}
	if o.WriteOut != "" {
		fmt.Fprint(stdout, writeOut(o.WriteOut, res, code, time.Since(start)))
	}
	return code
}

// result is what write-out can report.
type result struct {
	status    int
	proto     string
	size      int64
	effective string
	remote    string
	msg       string
}

func run(ctx context.Context, o Options, stdout io.Writer, res *result) int {
	if o.MaxTime > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.MaxTime)
		defer cancel()
	}
	target := o.URL
	if !strings.Contains(target, "://") {
		target = "http://" + target
	}
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		res.msg = fmt.Sprintf("URL rejected: Malformed input to a URL function: %q", o.URL)
		return 3
	}
	client, err := newClient(o)
	if err != nil {
		res.msg = err.Error()
		return ExitUsage
	}
	body, hasBody, err := requestBody(o.Data)
	if err != nil {
		res.msg = err.Error()
		return ExitFile
	}
	method := o.Method
	if method == "" {
		switch {
		case o.Head:
			method = http.MethodHead
		case hasBody:
			method = http.MethodPost
		default:
			method = http.MethodGet
		}
	}
	out, closeOut, err := openOutput(o.Output, stdout)
	if err != nil {
		res.msg = err.Error()
		return ExitWrite
	}
	defer closeOut()
	var dump io.Writer
	switch {
	case o.DumpHeader == "-":
		dump = stdout
	case o.DumpHeader != "":
		f, err := os.Create(o.DumpHeader)
		if err != nil {
			res.msg = err.Error()
			return ExitWrite
		}
		defer f.Close()
		dump = f
	case o.Head || o.Include:
		dump = out
	}

	cookies, err := newJar(o.Cookie, o.CookieJar)
	if err != nil {
		res.msg = err.Error()
		return ExitFile
	}
	if o.CookieJar != "" {
		defer func() {
			if err := cookies.save(o.CookieJar); err != nil && res.msg == "" {
				res.msg = "writing cookie jar: " + err.Error()
			}
		}()
	}
	for hop := 0; ; hop++ {
		if hop > 50 {
			res.msg = "Maximum (50) redirects followed"
			return ExitTooManyRedir
		}
		req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
		if err != nil {
			res.msg = err.Error()
			return 3
		}
		if hasBody {
			req.Body = io.NopCloser(strings.NewReader(body))
			req.ContentLength = int64(len(body))
			req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		req.Header.Set("User-Agent", "curl/8.16.0")
		req.Header.Set("Accept", "*/*")
		for _, h := range o.Headers {
			k, v, ok := strings.Cut(h, ":")
			k = strings.TrimSpace(k)
			if !ok || k == "" {
				continue // curl ignores such headers too
			}
			v = strings.TrimSpace(v)
			if strings.EqualFold(k, "Host") {
				req.Host = v
				continue
			}
			if v == "" {
				req.Header.Del(k) // "-H 'Name:'" removes a default header
				continue
			}
			req.Header.Set(k, v)
		}
		if c := cookies.header(); c != "" && req.Header.Get("Cookie") == "" {
			req.Header.Set("Cookie", c)
		}
		st := &trace{}
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), st.clientTrace()))
		resp, err := client.Do(req)
		if err != nil {
			code, msg := classify(err, st, u)
			res.msg = msg
			return code
		}
		res.status, res.effective, res.remote = resp.StatusCode, u.String(), st.remote
		res.proto = fmt.Sprintf("%d", resp.ProtoMajor)
		if resp.ProtoMajor == 1 {
			res.proto = fmt.Sprintf("1.%d", resp.ProtoMinor)
		}
		cookies.update(resp, u.Hostname())
		if dump != nil {
			writeHeaders(dump, resp)
		}
		if o.Location && isRedirect(resp.StatusCode) && resp.Header.Get("Location") != "" {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			next, err := u.Parse(resp.Header.Get("Location"))
			if err != nil {
				res.msg = "bad redirect location: " + err.Error()
				return 3
			}
			u = next
			if resp.StatusCode == http.StatusSeeOther || (method == http.MethodPost && resp.StatusCode <= http.StatusFound) {
				method, hasBody = http.MethodGet, false
			}
			continue
		}
		if o.Fail && resp.StatusCode >= 400 {
			resp.Body.Close()
			res.msg = fmt.Sprintf("The requested URL returned error: %d", resp.StatusCode)
			return ExitHTTPError
		}
		n, err := io.Copy(bodyWriter(out, o), resp.Body)
		resp.Body.Close()
		res.size = n
		if err != nil {
			code, msg := classify(err, st, u)
			if code == ExitEmptyReply {
				code = ExitRecv
			}
			res.msg = msg
			return code
		}
		return ExitOK
	}
}

func bodyWriter(out io.Writer, o Options) io.Writer {
	if o.Head {
		return io.Discard
	}
	return out
}

func isRedirect(code int) bool {
	switch code {
	case 301, 302, 303, 307, 308:
		return true
	}
	return false
}

// writeHeaders prints the status line and headers as curl does; names are
// lower case, as Envoy sends them and as Istio's docs show them.
func writeHeaders(w io.Writer, resp *http.Response) {
	var b strings.Builder
	if resp.ProtoMajor >= 2 {
		fmt.Fprintf(&b, "HTTP/%d %d\n", resp.ProtoMajor, resp.StatusCode)
	} else {
		fmt.Fprintf(&b, "HTTP/%d.%d %s\n", resp.ProtoMajor, resp.ProtoMinor, resp.Status)
	}
	keys := make([]string, 0, len(resp.Header))
	for k := range resp.Header {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		for _, v := range resp.Header[k] {
			fmt.Fprintf(&b, "%s: %s\n", strings.ToLower(k), v)
		}
	}
	b.WriteString("\n")
	io.WriteString(w, b.String())
}

func openOutput(path string, stdout io.Writer) (io.Writer, func(), error) {
	switch path {
	case "", "-":
		return stdout, func() {}, nil
	case "/dev/null":
		return io.Discard, func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, err
	}
	return f, func() { f.Close() }, nil
}

func requestBody(data []string) (string, bool, error) {
	if len(data) == 0 {
		return "", false, nil
	}
	parts := make([]string, len(data))
	for i, d := range data {
		if strings.HasPrefix(d, "@") {
			b, err := os.ReadFile(d[1:])
			if err != nil {
				return "", false, fmt.Errorf("reading data file: %w", err)
			}
			d = strings.NewReplacer("\r", "", "\n", "").Replace(string(b))
		}
		parts[i] = d
	}
	return strings.Join(parts, "&"), true, nil
}

func newClient(o Options) (*http.Client, error) {
	tlsConf := &tls.Config{InsecureSkipVerify: o.Insecure}
	if o.CACert != "" {
		pem, err := os.ReadFile(o.CACert)
		if err != nil {
			return nil, fmt.Errorf("reading CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("no certificates in %s", o.CACert)
		}
		tlsConf.RootCAs = pool
	}
	if o.Cert != "" {
		key := o.Key
		if key == "" {
			key = o.Cert
		}
		c, err := tls.LoadX509KeyPair(o.Cert, key)
		if err != nil {
			return nil, fmt.Errorf("loading client certificate: %w", err)
		}
		tlsConf.Certificates = []tls.Certificate{c}
	}
	proxy := http.ProxyFromEnvironment
	if o.Proxy != "" {
		p := o.Proxy
		if !strings.Contains(p, "://") {
			p = "http://" + p
		}
		pu, err := url.Parse(p)
		if err != nil {
			return nil, fmt.Errorf("bad proxy %q: %w", o.Proxy, err)
		}
		proxy = http.ProxyURL(pu)
	}
	resolve := map[string]string{}
	for _, r := range o.Resolve {
		f := strings.SplitN(r, ":", 3)
		if len(f) != 3 {
			return nil, fmt.Errorf("bad --resolve %q (want host:port:addr)", r)
		}
		resolve[net.JoinHostPort(f[0], f[1])] = net.JoinHostPort(strings.Trim(f[2], "[]"), f[1])
	}
	ct := o.ConnectTimeout
	if ct == 0 {
		ct = 300 * time.Second
	}
	d := &net.Dialer{Timeout: ct}
	tr := &http.Transport{
		Proxy:             proxy,
		TLSClientConfig:   tlsConf,
		ForceAttemptHTTP2: true,
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if a, ok := resolve[addr]; ok {
				addr = a
			}
			return d.DialContext(ctx, network, addr)
		},
	}
	return &http.Client{
		Transport:     tr,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}, nil
}

// trace records how far a request got, to pick curl's exit code.
type trace struct {
	dialed, tlsStarted, tlsDone, wrote bool
	remote                             string
}

func (t *trace) clientTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		ConnectDone: func(_, addr string, err error) {
			if err == nil {
				t.dialed = true
				t.remote = addr
			}
		},
		TLSHandshakeStart: func() { t.tlsStarted = true },
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			if err == nil {
				t.tlsDone = true
			}
		},
		WroteRequest: func(httptrace.WroteRequestInfo) { t.wrote = true },
	}
}

func classify(err error, t *trace, u *url.URL) (int, string) {
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownCA x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		return ExitTimeout, "Operation timed out: " + err.Error()
	case errors.As(err, &dnsErr):
		return ExitResolve, "Could not resolve host: " + dnsErr.Name
	case errors.As(err, &certErr) || errors.As(err, &unknownCA) || errors.As(err, &hostErr):
		return ExitCert, "SSL certificate problem: " + err.Error()
	case !t.dialed:
		return ExitConnect, fmt.Sprintf("Failed to connect to %s: %v", u.Host, unwrap(err))
	case t.tlsStarted && !t.tlsDone:
		return ExitTLS, "TLS connect error: " + unwrap(err).Error()
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		return ExitEmptyReply, "Empty reply from server"
	default:
		return ExitRecv, "Recv failure: " + unwrap(err).Error()
	}
}

// unwrap drops url.Error's "Get "http://…":" prefix.
func unwrap(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// writeOut expands -w: %{http_code}, %{response_code}, %{http_version},
// %{size_download}, %{time_total}, %{url_effective}, %{remote_ip},
// %{exitcode}, and the escapes \n \r \t \\.
func writeOut(format string, r *result, code int, took time.Duration) string {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c == '\\' && i+1 < len(format):
			i++
			switch format[i] {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case '\\':
				b.WriteByte('\\')
			default:
				b.WriteByte('\\')
				b.WriteByte(format[i])
			}
		case c == '%' && strings.HasPrefix(format[i:], "%{"):
			end := strings.IndexByte(format[i:], '}')
			if end < 0 {
				b.WriteString(format[i:])
				return b.String()
			}
			name := format[i+2 : i+end]
			i += end
			switch name {
			case "http_code", "response_code":
				fmt.Fprintf(&b, "%03d", r.status)
			case "http_version":
				if r.proto == "" {
					b.WriteString("0")
				} else {
					b.WriteString(r.proto)
				}
			case "size_download":
				fmt.Fprintf(&b, "%d", r.size)
			case "time_total":
				fmt.Fprintf(&b, "%.6f", took.Seconds())
			case "url_effective":
				b.WriteString(r.effective)
			case "remote_ip":
				host, _, _ := net.SplitHostPort(r.remote)
				b.WriteString(host)
			case "exitcode":
				fmt.Fprintf(&b, "%d", code)
			}
		case c == '%' && strings.HasPrefix(format[i:], "%%"):
			b.WriteByte('%')
			i++
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
