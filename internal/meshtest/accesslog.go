package meshtest

import "strings"

// Field positions in an access log line of Istio's default text format
// (accesslog.TextFormat), as AccessLogFields splits it.
const (
	LogTime = iota
	LogRequestLine
	LogCode
	LogFlags
	LogDetails
	LogTermination
	LogFailure
	LogBytesIn
	LogBytesOut
	LogDuration
	LogServiceTime
	LogXFF
	LogUserAgent
	LogRequestID
	LogAuthority
	LogUpstreamHost
	LogCluster
	LogUpstreamLocal
	LogDownstreamLocal
	LogDownstreamRemote
	LogSNI
	LogRoute
	LogFieldCount
)

// AccessLogFields splits a default-format access log line into its fields:
// brackets and quotes are stripped and the quoted request line is one
// field. An unterminated bracket or quote makes the rest one last field.
func AccessLogFields(line string) []string {
	var out []string
	s := strings.TrimSuffix(line, "\n")
	for len(s) > 0 {
		switch s[0] {
		case ' ':
			s = s[1:]
		case '[', '"':
			end := byte(']')
			if s[0] == '"' {
				end = '"'
			}
			i := strings.IndexByte(s[1:], end) + 1
			if i <= 0 {
				return append(out, s)
			}
			out, s = append(out, s[1:i]), s[i+1:]
		default:
			i := strings.IndexByte(s, ' ')
			if i < 0 {
				i = len(s)
			}
			out, s = append(out, s[:i]), s[i:]
		}
	}
	return out
}
