package curl

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
)

// jar is curl's cookie engine, reduced to one site: cookies from -b (a
// "k=v; k2=v2" string or a Netscape cookie file such as -c writes), updated
// by every response and sent on every request (including redirects).
type jar struct {
	on      bool
	cookies map[string]*http.Cookie
}

func newJar(b, c string) (*jar, error) {
	j := &jar{on: b != "" || c != "", cookies: map[string]*http.Cookie{}}
	switch {
	case b == "":
	case strings.Contains(b, "="):
		for _, part := range strings.Split(b, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k != "" {
				j.cookies[k] = &http.Cookie{Name: k, Value: v}
			}
		}
	default:
		if err := j.load(b); err != nil {
			return nil, err
		}
	}
	return j, nil
}

// load reads a Netscape cookie file; a missing file is an empty jar, as
// for curl.
func (j *jar) load(path string) error {
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading cookie file: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimPrefix(sc.Text(), "#HttpOnly_")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) != 7 {
			continue
		}
		j.cookies[f[5]] = &http.Cookie{Name: f[5], Value: f[6], Domain: f[0], Path: f[2]}
	}
	return sc.Err()
}

func (j *jar) header() string {
	if !j.on || len(j.cookies) == 0 {
		return ""
	}
	names := make([]string, 0, len(j.cookies))
	for n := range j.cookies {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = n + "=" + j.cookies[n].Value
	}
	return strings.Join(parts, "; ")
}

func (j *jar) update(resp *http.Response, host string) {
	if !j.on {
		return
	}
	for _, c := range resp.Cookies() {
		if c.MaxAge < 0 || c.Value == "" {
			delete(j.cookies, c.Name)
			continue
		}
		if c.Domain == "" {
			c.Domain = host
		}
		j.cookies[c.Name] = c
	}
}

// save writes the jar in the Netscape format curl -c writes.
func (j *jar) save(path string) error {
	var b strings.Builder
	b.WriteString("# Netscape HTTP Cookie File\n# written by weft sample curl\n\n")
	names := make([]string, 0, len(j.cookies))
	for n := range j.cookies {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := j.cookies[n]
		path := c.Path
		if path == "" {
			path = "/"
		}
		domain := c.Domain
		if c.HttpOnly {
			domain = "#HttpOnly_" + domain
		}
		secure := "FALSE"
		if c.Secure {
			secure = "TRUE"
		}
		var exp int64
		if !c.Expires.IsZero() {
			exp = c.Expires.Unix()
		}
		fmt.Fprintf(&b, "%s\tFALSE\t%s\t%s\t%d\t%s\t%s\n", domain, path, secure, exp, c.Name, c.Value)
	}
	return os.WriteFile(path, []byte(b.String()), 0o600)
}
