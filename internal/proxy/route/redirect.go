package route

import (
	"fmt"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// Redirect is a compiled RedirectAction.
type Redirect struct {
	Scheme        string // "" keeps the request's
	Host          string
	Port          uint32
	Path          string // path_redirect (may carry a query)
	PrefixRewrite string
	hasPrefix     bool
	Regex         *regexp.Regexp
	RegexSubst    string
	Code          int
	StripQuery    bool
}

func compileRedirect(r *routev3.RedirectAction, path string) (*Redirect, error) {
	out := &Redirect{Host: r.GetHostRedirect(), Port: r.GetPortRedirect(), StripQuery: r.GetStripQuery()}
	switch {
	case r.GetHttpsRedirect():
		out.Scheme = "https"
	case r.GetSchemeRedirect() != "":
		out.Scheme = strings.ToLower(r.GetSchemeRedirect())
	}
	switch p := r.GetPathRewriteSpecifier().(type) {
	case nil:
	case *routev3.RedirectAction_PathRedirect:
		out.Path = p.PathRedirect
	case *routev3.RedirectAction_PrefixRewrite:
		out.PrefixRewrite, out.hasPrefix = p.PrefixRewrite, true
	case *routev3.RedirectAction_RegexRewrite:
		re, err := regexp.Compile(p.RegexRewrite.GetPattern().GetRegex())
		if err != nil {
			return nil, fmt.Errorf("%s.regex_rewrite.pattern: %w", path, err)
		}
		out.Regex, out.RegexSubst = re, convertSubst(p.RegexRewrite.GetSubstitution())
	default:
		return nil, fmt.Errorf("%s: path rewrite %T not supported by weft-proxy", path, p)
	}
	switch r.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		out.Code = http.StatusMovedPermanently
	case routev3.RedirectAction_FOUND:
		out.Code = http.StatusFound
	case routev3.RedirectAction_SEE_OTHER:
		out.Code = http.StatusSeeOther
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		out.Code = http.StatusTemporaryRedirect
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		out.Code = http.StatusPermanentRedirect
	default:
		return nil, fmt.Errorf("%s.response_code: unknown code %v", path, r.GetResponseCode())
	}
	return out, nil
}

// Location builds the redirect target for r matched by rt, following
// Envoy: the scheme, host, port and path are each replaced when set; a
// scheme change drops a default port; strip_query drops the query.
func (rt *Route) Location(r *http.Request, tls bool) string {
	rd := rt.Redirect
	scheme := "http"
	if tls {
		scheme = "https"
	}
	if rd.Scheme != "" {
		scheme = rd.Scheme
	}
	host, port := r.Host, ""
	if h, p, err := net.SplitHostPort(r.Host); err == nil {
		host, port = h, p
	}
	if rd.Host != "" {
		host = rd.Host
		if h, p, err := net.SplitHostPort(rd.Host); err == nil {
			host, port = h, p
		}
	}
	if rd.Port != 0 {
		port = strconv.Itoa(int(rd.Port))
	} else if rd.Scheme != "" && (port == "80" || port == "443") {
		// Envoy drops the default port of the old scheme on a scheme change.
		port = ""
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	p := r.URL.EscapedPath()
	query := r.URL.RawQuery
	switch {
	case rd.Path != "":
		p = rd.Path
		if i := strings.IndexByte(p, '?'); i >= 0 {
			p, query = p[:i], p[i+1:]
		}
	case rd.hasPrefix:
		n := 0
		if rt.pathKind == pathPrefix || rt.pathKind == pathExact || rt.pathKind == pathSeparated {
			n = min(len(rt.path), len(p))
		}
		p = rd.PrefixRewrite + p[n:]
	case rd.Regex != nil:
		p = rd.Regex.ReplaceAllString(p, rd.RegexSubst)
	}
	if rd.StripQuery {
		query = ""
	}
	var b strings.Builder
	b.WriteString(scheme)
	b.WriteString("://")
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	b.WriteString(host)
	if port != "" {
		b.WriteByte(':')
		b.WriteString(port)
	}
	b.WriteString(p)
	if query != "" {
		b.WriteByte('?')
		b.WriteString(query)
	}
	return b.String()
}

// DirectResponse is a compiled DirectResponseAction.
type DirectResponse struct {
	Status int
	Body   []byte
}

// maxDirectBody is Envoy's default max_direct_response_body_size_bytes.
const maxDirectBody = 4096

func compileDirect(d *routev3.DirectResponseAction, path string) (*DirectResponse, error) {
	if err := xdsfield.Check(d, path, "status", "body"); err != nil {
		return nil, err
	}
	if d.GetStatus() < 200 || d.GetStatus() > 599 {
		return nil, fmt.Errorf("%s.status: %d is not in [200, 600)", path, d.GetStatus())
	}
	out := &DirectResponse{Status: int(d.GetStatus())}
	if b := d.GetBody(); b != nil {
		if err := xdsfield.Check(b, path+".body", "inline_string", "inline_bytes"); err != nil {
			return nil, err
		}
		if s := b.GetInlineString(); s != "" {
			out.Body = []byte(s)
		} else {
			out.Body = b.GetInlineBytes()
		}
		if len(out.Body) > maxDirectBody {
			return nil, fmt.Errorf("%s.body: %d bytes exceeds the %d byte limit", path, len(out.Body), maxDirectBody)
		}
	}
	return out, nil
}
