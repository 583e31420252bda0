package config

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// parseLiteral parses one JSON value or one Python literal, as OpenHands
// users write them in SANDBOX_* variables (OpenHands reads those with
// ast.literal_eval): dicts, lists, tuples, strings in single or double
// quotes, integers, floats, True/False/None and true/false/null.
//
// Results are map[string]any, []any, string, int64, float64, bool or nil.
// Dict keys must be strings and may not repeat. "\/" means "/" as in JSON.
func parseLiteral(s string) (any, error) {
	p := &litParser{s: s}
	p.space()
	v, err := p.value(0)
	if err != nil {
		return nil, err
	}
	p.space()
	if p.i < len(p.s) {
		return nil, p.errorf("unexpected %s after the value", p.next())
	}
	return v, nil
}

const maxLiteralDepth = 32

type litParser struct {
	s string
	i int
}

func (p *litParser) errorf(format string, args ...any) error {
	return fmt.Errorf("offset %d: %s", p.i, fmt.Sprintf(format, args...))
}

// next describes the input at the cursor for an error message.
func (p *litParser) next() string {
	if p.i >= len(p.s) {
		return "end of input"
	}
	r, _ := utf8.DecodeRuneInString(p.s[p.i:])
	return strconv.QuoteRune(r)
}

func (p *litParser) space() {
	for p.i < len(p.s) {
		switch p.s[p.i] {
		case ' ', '\t', '\n', '\r':
			p.i++
		default:
			return
		}
	}
}

func (p *litParser) value(depth int) (any, error) {
	if depth > maxLiteralDepth {
		return nil, p.errorf("nested too deeply")
	}
	if p.i >= len(p.s) {
		return nil, p.errorf("unexpected end of input")
	}
	c := p.s[p.i]
	switch {
	case c == '{':
		return p.dict(depth)
	case c == '[':
		return p.seq(depth, ']')
	case c == '(':
		return p.seq(depth, ')')
	case c == '\'' || c == '"':
		return p.str(false)
	case (c == 'r' || c == 'R') && p.i+1 < len(p.s) && (p.s[p.i+1] == '\'' || p.s[p.i+1] == '"'):
		p.i++
		return p.str(true)
	case c == '-' || c == '+' || c == '.' || isDigit(c):
		return p.number()
	case isLetter(c):
		return p.word()
	}
	return nil, p.errorf("unexpected %s", p.next())
}

func (p *litParser) dict(depth int) (any, error) {
	p.i++ // '{'
	out := map[string]any{}
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return out, nil
		}
		at := p.i
		k, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			p.i = at
			return nil, p.errorf("dict keys must be strings, got %s", show(k))
		}
		if _, dup := out[key]; dup {
			p.i = at
			return nil, p.errorf("duplicate key %q", key)
		}
		p.space()
		if p.i >= len(p.s) || p.s[p.i] != ':' {
			return nil, p.errorf("expected ':' after key %q, found %s", key, p.next())
		}
		p.i++
		p.space()
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out[key] = v
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == '}' {
			p.i++
			return out, nil
		}
		return nil, p.errorf("expected ',' or '}', found %s", p.next())
	}
}

// seq parses a list, or a tuple when end is ')'. As in Python, "(x)" is x
// itself and "(x,)" a one-item tuple; tuples come back as []any.
func (p *litParser) seq(depth int, end byte) (any, error) {
	p.i++ // '[' or '('
	out := []any{}
	comma := false
	for {
		p.space()
		if p.i < len(p.s) && p.s[p.i] == end {
			p.i++
			if end == ')' && len(out) == 1 && !comma {
				return out[0], nil
			}
			return out, nil
		}
		v, err := p.value(depth + 1)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
		p.space()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			comma = true
			continue
		}
		if p.i < len(p.s) && p.s[p.i] == end {
			continue
		}
		return nil, p.errorf("expected ',' or '%c', found %s", end, p.next())
	}
}

func (p *litParser) word() (any, error) {
	start := p.i
	for p.i < len(p.s) && (isLetter(p.s[p.i]) || isDigit(p.s[p.i])) {
		p.i++
	}
	switch w := p.s[start:p.i]; w {
	case "True", "true":
		return true, nil
	case "False", "false":
		return false, nil
	case "None", "null":
		return nil, nil
	default:
		p.i = start
		return nil, p.errorf("unknown name %q (strings need quotes)", truncate(w))
	}
}

func (p *litParser) number() (any, error) {
	start := p.i
	if c := p.s[p.i]; c == '-' || c == '+' {
		p.i++
	}
	body := p.i
	for p.i < len(p.s) {
		c := p.s[p.i]
		ok := isDigit(c) || isLetter(c) || c == '.'
		if (c == '+' || c == '-') && p.i > body && (p.s[p.i-1] == 'e' || p.s[p.i-1] == 'E') {
			ok = true
		}
		if !ok {
			break
		}
		p.i++
	}
	tok, digits := p.s[start:p.i], p.s[body:p.i]
	if digits == "" || !(isDigit(digits[0]) || digits[0] == '.') {
		p.i = start
		return nil, p.errorf("invalid number %q", truncate(tok))
	}
	if len(digits) > 1 && digits[0] == '0' && isDigit(digits[1]) {
		p.i = start
		return nil, p.errorf("invalid number %q: leading zeros are not allowed", truncate(tok))
	}
	n, err := strconv.ParseInt(tok, 0, 64)
	if err == nil {
		return n, nil
	}
	if errors.Is(err, strconv.ErrRange) {
		p.i = start
		return nil, p.errorf("integer %s out of range", truncate(tok))
	}
	lower := strings.ToLower(digits)
	if strings.HasPrefix(lower, "0x") || strings.HasPrefix(lower, "0o") || strings.HasPrefix(lower, "0b") {
		p.i = start
		return nil, p.errorf("invalid number %q", truncate(tok))
	}
	f, err := strconv.ParseFloat(tok, 64)
	if err != nil {
		p.i = start
		return nil, p.errorf("invalid number %q", truncate(tok))
	}
	return f, nil
}

func (p *litParser) str(raw bool) (any, error) {
	q := p.s[p.i]
	start := p.i
	p.i++
	var b strings.Builder
	for {
		if p.i >= len(p.s) || p.s[p.i] == '\n' {
			p.i = start
			return nil, p.errorf("unterminated string")
		}
		c := p.s[p.i]
		switch {
		case c == q:
			p.i++
			return b.String(), nil
		case c != '\\':
			b.WriteByte(c)
			p.i++
		case raw:
			b.WriteByte(c)
			p.i++
			if p.i < len(p.s) {
				b.WriteByte(p.s[p.i])
				p.i++
			}
		default:
			if err := p.escape(&b); err != nil {
				return nil, err
			}
		}
	}
}

// escape decodes one backslash escape at the cursor into b.
func (p *litParser) escape(b *strings.Builder) error {
	at := p.i
	p.i++ // '\\'
	if p.i >= len(p.s) {
		p.i = at
		return p.errorf("unterminated string")
	}
	c := p.s[p.i]
	p.i++
	if s, ok := simpleEscape(c); ok {
		b.WriteString(s)
		return nil
	}
	switch {
	case c >= '0' && c <= '7':
		n := int(c - '0')
		for k := 0; k < 2 && p.i < len(p.s) && p.s[p.i] >= '0' && p.s[p.i] <= '7'; k++ {
			n = n*8 + int(p.s[p.i]-'0')
			p.i++
		}
		b.WriteRune(rune(n))
		return nil
	case c == 'x' || c == 'u' || c == 'U':
		width := 2
		if c == 'u' {
			width = 4
		} else if c == 'U' {
			width = 8
		}
		r, ok := p.hex(width)
		if !ok {
			p.i = at
			return p.errorf("invalid \\%c escape", c)
		}
		if c == 'u' && utf16.IsSurrogate(r) {
			if !strings.HasPrefix(p.s[p.i:], "\\u") {
				p.i = at
				return p.errorf("unpaired surrogate in \\u escape")
			}
			p.i += 2
			r2, ok := p.hex(4)
			r = utf16.DecodeRune(r, r2)
			if !ok || r == utf8.RuneError {
				p.i = at
				return p.errorf("invalid surrogate pair in \\u escape")
			}
		}
		if !utf8.ValidRune(r) {
			p.i = at
			return p.errorf("invalid code point in \\%c escape", c)
		}
		b.WriteRune(r)
		return nil
	}
	// Python keeps unknown escapes as they are.
	b.WriteByte('\\')
	b.WriteByte(c)
	return nil
}

func (p *litParser) hex(width int) (rune, bool) {
	if p.i+width > len(p.s) {
		return 0, false
	}
	n, err := strconv.ParseUint(p.s[p.i:p.i+width], 16, 32)
	if err != nil {
		return 0, false
	}
	p.i += width
	return rune(n), true
}

// simpleEscape decodes the one-character escapes of Python and JSON.
func simpleEscape(c byte) (string, bool) {
	switch c {
	case '\\', '\'', '"', '/':
		return string(c), true
	case 'n':
		return "\n", true
	case 't':
		return "\t", true
	case 'r':
		return "\r", true
	case 'b':
		return "\b", true
	case 'f':
		return "\f", true
	case 'v':
		return "\v", true
	case 'a':
		return "\a", true
	case '\n': // line continuation
		return "", true
	}
	return "", false
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' }
