package telemetry

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	filev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/access_loggers/file/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/weftmesh/weft/internal/accesslog"
	"github.com/weftmesh/weft/internal/proxy/rflag"
	"github.com/weftmesh/weft/internal/proxy/xdsfield"
)

// sinkQueue is how many lines may wait for a slow sink before new lines
// are dropped (and counted).
const sinkQueue = 4096

// sink is one access log destination, shared by every logger writing to
// the same path. Lines go through a bounded queue to one writer goroutine.
type sink struct {
	path    string
	w       io.Writer
	closer  io.Closer
	q       chan *[]byte
	kick    chan struct{}
	stop    chan struct{}
	done    chan struct{}
	dropped atomic.Int64
	written atomic.Int64
}

var linePool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func newSink(path string, w io.Writer, c io.Closer) *sink {
	s := &sink{path: path, w: w, closer: c, q: make(chan *[]byte, sinkQueue),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

// flushInterval is how long a line may wait in the queue before the
// writer takes it (Envoy flushes access log files on a timer too): the
// request path then never wakes the writer, except to drain a queue that
// is half full.
const flushInterval = time.Second

// write queues a line; it never blocks. The sink owns b afterwards.
func (s *sink) write(b *[]byte) {
	select {
	case s.q <- b:
		if len(s.q) > sinkQueue/2 {
			select {
			case s.kick <- struct{}{}:
			default:
			}
		}
	default:
		s.dropped.Add(1)
		linePool.Put(b)
	}
}

// run writes queued lines every flushInterval or when kicked. The queue
// is never closed (a late writer must not panic): stop ends the loop
// after what is queued; later lines just fill the queue and drop.
func (s *sink) run() {
	defer close(s.done)
	bw := bufio.NewWriterSize(s.w, 64<<10)
	tick := time.NewTicker(flushInterval)
	defer tick.Stop()
	drain := func() {
		for {
			select {
			case b := <-s.q:
				bw.Write(*b)
				s.written.Add(1)
				*b = (*b)[:0]
				linePool.Put(b)
			default:
				bw.Flush()
				return
			}
		}
	}
	for {
		select {
		case <-tick.C:
			drain()
		case <-s.kick:
			drain()
		case <-s.stop:
			drain()
			return
		}
	}
}

func (s *sink) close() {
	close(s.stop)
	<-s.done
	if s.closer != nil {
		s.closer.Close()
	}
}

// sinks opens each path once.
type sinks struct {
	mu     sync.Mutex
	m      map[string]*sink
	stdout io.Writer
	closed bool
}

func (ss *sinks) get(path string) (*sink, error) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed {
		return nil, errors.New("telemetry is closed")
	}
	if s := ss.m[path]; s != nil {
		return s, nil
	}
	var s *sink
	switch path {
	case "/dev/stdout":
		s = newSink(path, ss.stdout, nil)
	case "/dev/stderr":
		s = newSink(path, os.Stderr, nil)
	default:
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return nil, fmt.Errorf("access log %q: %w", path, err)
		}
		s = newSink(path, f, f)
	}
	if ss.m == nil {
		ss.m = map[string]*sink{}
	}
	ss.m[path] = s
	return s, nil
}

func (ss *sinks) close() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.closed = true
	for _, s := range ss.m {
		s.close()
	}
	ss.m = nil
}

func (ss *sinks) each(fn func(*sink)) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, s := range ss.m {
		fn(s)
	}
}

// accessLogger is one compiled envoy.access_loggers.file entry.
type accessLogger struct {
	sink   *sink
	text   *Format
	json   *JSONFormat
	filter logFilter
}

func (a *accessLogger) log(e *Entry) {
	if a.filter != nil && !a.filter(e) {
		return
	}
	bp := linePool.Get().(*[]byte)
	if a.json != nil {
		*bp = a.json.AppendJSON((*bp)[:0], e)
	} else {
		*bp = a.text.AppendText((*bp)[:0], e)
	}
	a.sink.write(bp)
}

type logFilter func(*Entry) bool

// compileAccessLogs compiles an access_log list (HCM or tcp_proxy).
func (t *Telemetry) compileAccessLogs(logs []*accesslogv3.AccessLog, path string) ([]*accessLogger, error) {
	var out []*accessLogger
	for i, l := range logs {
		p := fmt.Sprintf("%s.access_log[%d]", path, i)
		if err := xdsfield.Check(l, p, "name", "typed_config", "filter"); err != nil {
			return nil, err
		}
		tc := l.GetTypedConfig()
		fc := &filev3.FileAccessLog{}
		if tc == nil || !tc.MessageIs(fc) {
			return nil, fmt.Errorf("%s.typed_config: only envoy.access_loggers.file (FileAccessLog) is supported by weft-proxy", p)
		}
		if err := tc.UnmarshalTo(fc); err != nil {
			return nil, fmt.Errorf("%s.typed_config: %w", p, err)
		}
		if err := xdsfield.Check(fc, p, "path", "log_format", "format", "json_format"); err != nil {
			return nil, err
		}
		if fc.GetPath() == "" {
			return nil, fmt.Errorf("%s.path: empty", p)
		}
		a := &accessLogger{}
		var err error
		switch {
		case fc.GetLogFormat() != nil:
			lf := fc.GetLogFormat()
			if err := xdsfield.Check(lf, p+".log_format", "text_format", "text_format_source", "json_format"); err != nil {
				return nil, err
			}
			switch {
			case lf.GetJsonFormat() != nil:
				m := map[string]string{}
				for k, v := range lf.GetJsonFormat().GetFields() {
					s, ok := v.GetKind().(*structpb.Value_StringValue)
					if !ok {
						return nil, fmt.Errorf("%s.log_format.json_format.%s: only string values are supported by weft-proxy", p, k)
					}
					m[k] = s.StringValue
				}
				a.json, err = CompileJSON(m)
			case lf.GetTextFormatSource() != nil:
				ds := lf.GetTextFormatSource()
				if err := xdsfield.Check(ds, p+".log_format.text_format_source", "inline_string"); err != nil {
					return nil, err
				}
				a.text, err = CompileFormat(ds.GetInlineString())
			default:
				a.text, err = CompileFormat(lf.GetTextFormat())
			}
		case fc.GetJsonFormat() != nil:
			m := map[string]string{}
			for k, v := range fc.GetJsonFormat().GetFields() {
				m[k] = v.GetStringValue()
			}
			a.json, err = CompileJSON(m)
		case fc.GetFormat() != "":
			a.text, err = CompileFormat(fc.GetFormat())
		default:
			a.text, err = CompileFormat(accesslog.TextFormat)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if a.filter, err = compileFilter(l.GetFilter(), p+".filter"); err != nil {
			return nil, err
		}
		if a.sink, err = t.sinks.get(fc.GetPath()); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, a)
	}
	return out, nil
}

// compileFilter supports the filters Istio's Telemetry API translates
// simple expressions to: status code and duration comparisons, response
// flags, and/or of those, not_health_check (no health checks reach us).
func compileFilter(f *accesslogv3.AccessLogFilter, p string) (logFilter, error) {
	if f == nil {
		return nil, nil
	}
	cmp := func(c *accesslogv3.ComparisonFilter, q string) (func(int64) bool, error) {
		if err := xdsfield.Check(c.GetValue(), q+".value", "default_value", "runtime_key"); err != nil {
			return nil, err
		}
		v := int64(c.GetValue().GetDefaultValue())
		switch c.GetOp() {
		case accesslogv3.ComparisonFilter_EQ:
			return func(x int64) bool { return x == v }, nil
		case accesslogv3.ComparisonFilter_GE:
			return func(x int64) bool { return x >= v }, nil
		case accesslogv3.ComparisonFilter_LE:
			return func(x int64) bool { return x <= v }, nil
		case accesslogv3.ComparisonFilter_NE:
			return func(x int64) bool { return x != v }, nil
		}
		return nil, fmt.Errorf("%s.op: %v not supported", q, c.GetOp())
	}
	switch s := f.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		c, err := cmp(s.StatusCodeFilter.GetComparison(), p+".status_code_filter.comparison")
		if err != nil {
			return nil, err
		}
		return func(e *Entry) bool { return c(int64(e.Info.Status)) }, nil
	case *accesslogv3.AccessLogFilter_DurationFilter:
		c, err := cmp(s.DurationFilter.GetComparison(), p+".duration_filter.comparison")
		if err != nil {
			return nil, err
		}
		return func(e *Entry) bool { return c(e.Info.Duration.Milliseconds()) }, nil
	case *accesslogv3.AccessLogFilter_NotHealthCheckFilter:
		return func(*Entry) bool { return true }, nil
	case *accesslogv3.AccessLogFilter_ResponseFlagFilter:
		var want rflag.Flags
		for _, name := range s.ResponseFlagFilter.GetFlags() {
			fl, ok := parseFlag(name)
			if !ok {
				return nil, fmt.Errorf("%s.response_flag_filter: unknown flag %q", p, name)
			}
			want |= fl
		}
		if len(s.ResponseFlagFilter.GetFlags()) == 0 {
			return func(e *Entry) bool { return e.Info.Flags != 0 }, nil
		}
		return func(e *Entry) bool { return e.Info.Flags&want != 0 }, nil
	case *accesslogv3.AccessLogFilter_AndFilter, *accesslogv3.AccessLogFilter_OrFilter:
		var subs []*accesslogv3.AccessLogFilter
		and := false
		if a, ok := s.(*accesslogv3.AccessLogFilter_AndFilter); ok {
			subs, and = a.AndFilter.GetFilters(), true
		} else {
			subs = s.(*accesslogv3.AccessLogFilter_OrFilter).OrFilter.GetFilters()
		}
		var fs []logFilter
		for i, sf := range subs {
			c, err := compileFilter(sf, fmt.Sprintf("%s.filters[%d]", p, i))
			if err != nil {
				return nil, err
			}
			if c != nil {
				fs = append(fs, c)
			}
		}
		return func(e *Entry) bool {
			for _, c := range fs {
				if c(e) != and {
					return !and
				}
			}
			return and
		}, nil
	}
	return nil, fmt.Errorf("%s: filter type not supported by weft-proxy", p)
}

func parseFlag(name string) (rflag.Flags, bool) {
	for f := rflag.Flags(1); f != 0; f <<= 1 {
		if s := f.String(); s != "" && s != "-" && !strings.Contains(s, ",") && s == name {
			return f, true
		}
		if f == rflag.RBAC {
			break
		}
	}
	return 0, false
}
