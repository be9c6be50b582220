package config

import (
	"errors"
	"fmt"
)

// headerValueError checks a header value to add or set as Envoy parses it
// (its header formatter, which Istio's ValidateHTTPHeaderValue mirrors): no
// control characters other than tab, and every unescaped '%' opens a
// %VARIABLE% or %VARIABLE(args)% expression that is closed; "%%" is a
// literal percent sign. Arguments are a bare string or a JSON array of
// strings. What the variable names is not checked.
func headerValueError(v string) error {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
			return fmt.Errorf("header value configuration %s is invalid", v)
		}
	}
	const (
		literal     = iota
		name        // inside %NAME
		argsOpen    // after '(' : a '[' or a bare argument
		argString   // inside an argument string
		argNext     // after a JSON string: ',' or ']'
		argQuote    // expecting '"'
		argsClose   // after ']': ')'
		variableEnd // after ')': '%'
	)
	state := literal
	for i := 0; i < len(v); i++ {
		c := v[i]
		switch state {
		case literal:
			if c != '%' {
				continue
			}
			if i+1 == len(v) {
				return errors.New("header value configuration: invalid header configuration. Un-escaped %")
			}
			if v[i+1] == '%' {
				i++ // "%%"
				continue
			}
			state = name
		case name:
			switch c {
			case '%':
				state = literal
			case '(':
				state = argsOpen
			}
		case argsOpen:
			if c == '[' {
				state = argQuote
			} else if c != ' ' {
				state = argString
			}
		case argQuote:
			if c == '"' {
				state = argString
			} else if c != ' ' {
				return errors.New(`header value configuration: invalid header configuration. Expecting '"'`)
			}
		case argString:
			switch c {
			case '\\':
				if i+1 == len(v) {
					return errors.New("header value configuration: invalid header configuration. Un-terminated backslash in JSON string")
				}
				i++
			case ')':
				state = variableEnd
			case '"':
				state = argNext
			}
		case argNext:
			switch {
			case c == ',':
				state = argQuote
			case c == ']':
				state = argsClose
			case c != ' ':
				return errors.New("header value configuration: invalid header configuration. Expecting ',', ']', or whitespace")
			}
		case argsClose:
			if c == ')' {
				state = variableEnd
			} else if c != ' ' {
				return errors.New("header value configuration: invalid header configuration. Expecting ')' or whitespace")
			}
		case variableEnd:
			if c == '%' {
				state = literal
			} else if c != ' ' {
				return errors.New("header value configuration: invalid header configuration. Expecting '%' or whitespace after")
			}
		}
	}
	if state != literal {
		return fmt.Errorf("header value configuration: invalid header configuration. Un-terminated variable expression '%s'", v)
	}
	return nil
}
