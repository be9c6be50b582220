package telemetry

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/weftmesh/weft/internal/proxy/filter"
)

type opKind uint8

const (
	opLiteral opKind = iota
	opStartTime
	opReq
	opResp
	opProtocol
	opResponseCode
	opResponseFlags
	opResponseCodeDetails
	opConnTermDetails
	opUpstreamFailure
	opBytesReceived
	opBytesSent
	opDuration
	opUpstreamHost
	opUpstreamCluster
	opUpstreamLocal
	opDownstreamLocal
	opDownstreamLocalNoPort
	opDownstreamRemote
	opDownstreamRemoteNoPort
	opServerName
	opRouteName
	opMethod
)

var opNames = map[string]opKind{
	"START_TIME": opStartTime, "PROTOCOL": opProtocol, "RESPONSE_CODE": opResponseCode,
	"RESPONSE_FLAGS": opResponseFlags, "RESPONSE_CODE_DETAILS": opResponseCodeDetails,
	"CONNECTION_TERMINATION_DETAILS": opConnTermDetails, "UPSTREAM_TRANSPORT_FAILURE_REASON": opUpstreamFailure,
	"BYTES_RECEIVED": opBytesReceived, "BYTES_SENT": opBytesSent, "DURATION": opDuration,
	"UPSTREAM_HOST": opUpstreamHost, "UPSTREAM_CLUSTER": opUpstreamCluster, "UPSTREAM_CLUSTER_RAW": opUpstreamCluster,
	"UPSTREAM_LOCAL_ADDRESS": opUpstreamLocal, "DOWNSTREAM_LOCAL_ADDRESS": opDownstreamLocal,
	"DOWNSTREAM_LOCAL_ADDRESS_WITHOUT_PORT": opDownstreamLocalNoPort, "DOWNSTREAM_REMOTE_ADDRESS": opDownstreamRemote,
	"DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT": opDownstreamRemoteNoPort, "REQUESTED_SERVER_NAME": opServerName,
	"ROUTE_NAME": opRouteName, "METHOD": opMethod,
}

// op is one piece of a compiled format.
type op struct {
	kind    opKind
	text    string // literal, or the header name for REQ/RESP
	alt     string // REQ(A?B): B
	maxLen  int    // REQ(X):N
	timeFmt string // START_TIME(fmt), Go layout
	numeric bool   // renders a number (JSON keeps it unquoted)
}

// Format is a compiled Envoy format string.
type Format struct{ ops []op }

// CompileFormat parses an Envoy substitution format string. Unknown
// commands are an error (the listener is NACKed), as in Envoy.
func CompileFormat(s string) (*Format, error) {
	f := &Format{}
	lit := strings.Builder{}
	flush := func() {
		if lit.Len() > 0 {
			f.ops = append(f.ops, op{kind: opLiteral, text: lit.String()})
			lit.Reset()
		}
	}
	for i := 0; i < len(s); {
		c := s[i]
		if c != '%' {
			lit.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '%' {
			lit.WriteByte('%')
			i += 2
			continue
		}
		end := strings.IndexByte(s[i+1:], '%')
		if end < 0 {
			return nil, fmt.Errorf("format %q: unterminated command at offset %d", s, i)
		}
		cmd := s[i+1 : i+1+end]
		o, err := parseCommand(cmd)
		if err != nil {
			return nil, fmt.Errorf("format: %w", err)
		}
		flush()
		f.ops = append(f.ops, o)
		i += end + 2
	}
	flush()
	return f, nil
}

func parseCommand(cmd string) (op, error) {
	name, arg, maxLen := cmd, "", 0
	if i := strings.IndexByte(cmd, '('); i >= 0 {
		j := strings.LastIndexByte(cmd, ')')
		if j < i {
			return op{}, fmt.Errorf("command %q: missing )", cmd)
		}
		name, arg = cmd[:i], cmd[i+1:j]
		if rest := cmd[j+1:]; rest != "" {
			if rest[0] != ':' {
				return op{}, fmt.Errorf("command %q: unexpected %q", cmd, rest)
			}
			n, err := strconv.Atoi(rest[1:])
			if err != nil || n < 0 {
				return op{}, fmt.Errorf("command %q: bad length %q", cmd, rest[1:])
			}
			maxLen = n
		}
	}
	switch name {
	case "REQ", "RESP":
		if arg == "" {
			return op{}, fmt.Errorf("command %q: header name required", cmd)
		}
		o := op{kind: opReq, maxLen: maxLen}
		if name == "RESP" {
			o.kind = opResp
		}
		h, alt, _ := strings.Cut(arg, "?")
		o.text, o.alt = strings.ToLower(h), strings.ToLower(alt)
		if o.kind == opResp && o.text == "x-envoy-upstream-service-time" {
			o.numeric = true
		}
		return o, nil
	case "START_TIME":
		o := op{kind: opStartTime, timeFmt: "2006-01-02T15:04:05.000Z"}
		if arg != "" {
			o.timeFmt = strftime(arg)
		}
		return o, nil
	}
	k, ok := opNames[name]
	if !ok || arg != "" {
		return op{}, fmt.Errorf("command %q is not supported by weft-proxy", cmd)
	}
	o := op{kind: k, maxLen: maxLen}
	switch k {
	case opResponseCode, opBytesReceived, opBytesSent, opDuration:
		o.numeric = true
	}
	return o, nil
}

// strftime converts the common strftime verbs to a Go layout.
func strftime(s string) string {
	r := strings.NewReplacer("%Y", "2006", "%m", "01", "%d", "02", "%H", "15", "%M", "04", "%S", "05",
		"%E3S", "05.000", "%E6S", "05.000000", "%z", "-0700", "%s", "")
	return r.Replace(s)
}

// Entry is what a line is rendered from: an HTTP request or, with TCP
// set, a TCP connection (no method, path, protocol or status).
type Entry struct {
	Info *filter.Info
	TCP  bool
	// UpstreamLocal is the upstream connection's local address, when known.
	UpstreamLocal string
	// TerminationDetails: why the proxy closed a TCP connection itself.
	TerminationDetails string
}

// value renders one op; ok is false for a missing value ("-" in text).
func (o *op) value(e *Entry, b []byte) ([]byte, bool) {
	in := e.Info
	start := len(b)
	switch o.kind {
	case opStartTime:
		b = in.Start.UTC().AppendFormat(b, o.timeFmt)
	case opReq:
		v := reqHeader(in, o.text)
		if v == "" && o.alt != "" {
			v = reqHeader(in, o.alt)
		}
		b = append(b, v...)
	case opResp:
		if o.text == "x-envoy-upstream-service-time" && in.ServiceTime > 0 {
			b = strconv.AppendInt(b, in.ServiceTime.Milliseconds(), 10)
		} else if in.ResponseHeader != nil {
			b = append(b, in.ResponseHeader.Get(o.text)...)
		}
	case opProtocol:
		b = append(b, in.Protocol...)
	case opMethod:
		b = append(b, in.Method...)
	case opResponseCode:
		b = strconv.AppendInt(b, int64(in.Status), 10)
	case opResponseFlags:
		if in.Flags == 0 {
			return b, false
		}
		b = append(b, in.Flags.String()...)
	case opResponseCodeDetails:
		b = append(b, in.Details...)
	case opConnTermDetails:
		b = append(b, e.TerminationDetails...)
	case opUpstreamFailure:
	case opBytesReceived:
		b = strconv.AppendInt(b, in.BytesIn, 10)
	case opBytesSent:
		b = strconv.AppendInt(b, in.BytesOut, 10)
	case opDuration:
		b = strconv.AppendInt(b, in.Duration.Milliseconds(), 10)
	case opUpstreamHost:
		b = append(b, in.Host...)
	case opUpstreamCluster:
		b = append(b, in.Cluster...)
	case opUpstreamLocal:
		b = append(b, e.UpstreamLocal...)
	case opDownstreamLocal, opDownstreamLocalNoPort:
		if d := in.Downstream; d != nil {
			a := d.OriginalDst
			if !a.IsValid() {
				a = d.Local
			}
			if a.IsValid() {
				if o.kind == opDownstreamLocal {
					b = a.AppendTo(b)
				} else {
					b = a.Addr().Unmap().AppendTo(b)
				}
			}
		}
	case opDownstreamRemote, opDownstreamRemoteNoPort:
		if d := in.Downstream; d != nil && d.Remote.IsValid() {
			if o.kind == opDownstreamRemote {
				b = d.Remote.AppendTo(b)
			} else {
				b = d.Remote.Addr().Unmap().AppendTo(b)
			}
		}
	case opServerName:
		if d := in.Downstream; d != nil {
			b = append(b, d.ServerName...)
		}
	case opRouteName:
		b = append(b, in.RouteName...)
	}
	if o.maxLen > 0 && len(b)-start > o.maxLen {
		b = b[:start+o.maxLen]
	}
	return b, len(b) > start
}

// reqHeader reads a request header or pseudo-header for %REQ(…)%.
func reqHeader(in *filter.Info, name string) string {
	switch name {
	case ":method":
		return in.Method
	case ":path":
		// An absolute-URI request (explicit proxy) has the path alone as
		// :path, as Envoy's HTTP/1 codec makes it.
		p := in.Path
		if i := strings.Index(p, "://"); i > 0 && i < 8 {
			if j := strings.IndexByte(p[i+3:], '/'); j >= 0 {
				return p[i+3+j:]
			}
			return "/"
		}
		return p
	case ":authority", "host":
		return in.Authority
	case "user-agent":
		return in.UserAgent
	case "x-forwarded-for":
		return in.XFF
	case "x-request-id":
		return in.RequestID
	}
	if in.RequestHeader == nil {
		return ""
	}
	return in.RequestHeader.Get(http.CanonicalHeaderKey(name))
}

// AppendText renders a text line: missing values print as "-".
func (f *Format) AppendText(b []byte, e *Entry) []byte {
	for i := range f.ops {
		o := &f.ops[i]
		if o.kind == opLiteral {
			b = append(b, o.text...)
			continue
		}
		var ok bool
		if b, ok = o.value(e, b); !ok {
			b = append(b, '-')
		}
	}
	return b
}

// JSONFormat is a compiled json_format: keys sorted, each a Format.
type JSONFormat struct {
	keys []string
	fmts []*Format
}

// CompileJSON compiles a json_format (key → format string).
func CompileJSON(m map[string]string) (*JSONFormat, error) {
	j := &JSONFormat{}
	for k := range m {
		j.keys = append(j.keys, k)
	}
	sort.Strings(j.keys)
	for _, k := range j.keys {
		f, err := CompileFormat(m[k])
		if err != nil {
			return nil, fmt.Errorf("json_format %q: %w", k, err)
		}
		j.fmts = append(j.fmts, f)
	}
	return j, nil
}

// AppendJSON renders one JSON object and a newline. A value that is a
// single numeric command is a JSON number; a missing one is null.
func (j *JSONFormat) AppendJSON(b []byte, e *Entry) []byte {
	b = append(b, '{')
	var scratch [128]byte
	for i, k := range j.keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, k)
		b = append(b, ':')
		f := j.fmts[i]
		if len(f.ops) == 1 && f.ops[0].kind != opLiteral {
			v, ok := f.ops[0].value(e, scratch[:0])
			switch {
			case !ok:
				b = append(b, "null"...)
			case f.ops[0].numeric:
				b = append(b, v...)
			default:
				b = appendJSONString(b, v)
			}
			continue
		}
		b = appendJSONString(b, f.AppendText(scratch[:0], e))
	}
	return append(b, '}', '\n')
}

func appendJSONString(b, v []byte) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	for _, c := range v {
		switch {
		case c == '"' || c == '\\':
			b = append(b, '\\', c)
		case c < 0x20:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		default:
			b = append(b, c)
		}
	}
	return append(b, '"')
}
