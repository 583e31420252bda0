package security

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"mvdan.cc/sh/v3/syntax"
)

// maxFields bounds the fields one word may expand to (brace expansion).
const maxFields = 64

// fieldBuilder accumulates the fields of a word as bash splits them.
type fieldBuilder struct {
	out  []string
	cur  []byte
	have bool
}

func (b *fieldBuilder) lit(s string) {
	b.cur = append(b.cur, s...)
	b.have = true
}

// split adds the result of an unquoted expansion, which bash splits on
// blanks (the default IFS).
func (b *fieldBuilder) split(s string) {
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '\t' || s[i] == '\n' {
			if i > start {
				b.lit(s[start:i])
			}
			b.flush()
			start = i + 1
		}
	}
	if start < len(s) {
		b.lit(s[start:])
	}
}

func (b *fieldBuilder) flush() {
	if b.have {
		b.out = append(b.out, string(b.cur))
		b.cur = b.cur[:0]
		b.have = false
	}
}

// fields expands words into the argument list bash would build: quotes
// removed, known variables substituted (unknown parts become holes),
// brace expansions expanded, unquoted expansions split. Globs are left as
// they are, for the matcher.
func (st *state) fields(words []*syntax.Word) []string {
	var b fieldBuilder
	for _, w := range words {
		alts := [][]syntax.WordPart{w.Parts}
		if braced := (&syntax.Word{Parts: w.Parts}); syntax.SplitBraces(braced) {
			// SplitBraces replaces the parts of the word it is given, so it
			// gets a copy: the tree is walked again later.
			alts = expandBraces(braced.Parts)
		}
		for _, parts := range alts {
			for i, p := range parts {
				st.part(&b, p, false, true, i == 0)
			}
			b.flush()
		}
	}
	return b.out
}

// value expands a word without field splitting, as in an assignment.
func (st *state) value(w *syntax.Word) string {
	if w == nil {
		return ""
	}
	var b fieldBuilder
	for i, p := range w.Parts {
		st.part(&b, p, false, false, i == 0)
	}
	return string(b.cur)
}

// part adds one word part. quoted: inside double quotes; split: unquoted
// expansions are split into fields; first: the first part of the word,
// where a tilde expands.
func (st *state) part(b *fieldBuilder, p syntax.WordPart, quoted, split, first bool) {
	switch p := p.(type) {
	case *syntax.Lit:
		if quoted {
			b.lit(unescapeDouble(p.Value))
			return
		}
		v := unescapeLit(p.Value)
		if first && strings.HasPrefix(p.Value, "~") {
			v = st.tilde(v)
		}
		b.lit(v)
	case *syntax.SglQuoted:
		if p.Dollar {
			b.lit(ansiC(p.Value))
		} else {
			b.lit(p.Value)
		}
	case *syntax.DblQuoted:
		b.have = true
		for _, q := range p.Parts {
			if pe, ok := q.(*syntax.ParamExp); ok && split && pe.Param != nil && pe.Param.Value == "@" && pe.Exp == nil {
				st.part(b, q, false, true, false) // "$@": one field per argument
				continue
			}
			st.part(b, q, true, split, false)
		}
	case *syntax.ParamExp:
		v, ok := st.param(p)
		st.expansion(b, v, ok, quoted, split)
	case *syntax.CmdSubst:
		v, ok := st.fold(p)
		st.expansion(b, v, ok, quoted, split)
	case *syntax.ExtGlob:
		b.lit("*")
	default: // arithmetic, process substitution
		b.lit(hole)
	}
}

func (st *state) expansion(b *fieldBuilder, v string, known, quoted, split bool) {
	switch {
	case !known:
		b.lit(hole)
	case quoted || !split:
		b.lit(v)
	default:
		b.split(v)
	}
}

// tilde expands a leading ~ as bash does: ~ and ~/x are the home
// directory, ~user is /home/user, ~+ the working directory.
func (st *state) tilde(v string) string {
	if !strings.HasPrefix(v, "~") {
		return v
	}
	prefix, rest := v, ""
	if i := strings.IndexByte(v, '/'); i >= 0 {
		prefix, rest = v[:i], v[i:]
	}
	switch {
	case prefix == "~":
		return "~" + rest
	case prefix == "~+":
		if st.cwd == "" {
			return hole + rest
		}
		return st.cwd + rest
	case prefix == "~-":
		return hole + rest
	case prefix == "~root":
		return "/root" + rest
	case validName(prefix[1:]):
		return "/home/" + prefix[1:] + rest
	}
	return v
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// param evaluates a parameter expansion.
func (st *state) param(p *syntax.ParamExp) (string, bool) {
	if p.Param == nil || p.Excl || p.Length || p.Width || p.IsSet || p.Index != nil ||
		p.Slice != nil || p.Repl != nil || p.Names != 0 || p.NestedParam != nil ||
		p.Flags != nil || len(p.Modifiers) > 0 {
		return "", false
	}
	v, ok := st.lookup(p.Param.Value)
	if p.Exp == nil {
		return v, ok
	}
	switch p.Exp.Op {
	case syntax.DefaultUnset, syntax.AssignUnset:
		if ok {
			return v, true
		}
		// Unknown or unset: assume the default is used, the riskier case
		// when the default is the dangerous value.
		return st.value(p.Exp.Word), true
	case syntax.DefaultUnsetOrNull, syntax.AssignUnsetOrNull:
		if ok && v != "" {
			return v, true
		}
		return st.value(p.Exp.Word), true
	case syntax.AlternateUnset, syntax.AlternateUnsetOrNull:
		if !ok {
			return "", false
		}
		if v == "" && p.Exp.Op == syntax.AlternateUnsetOrNull {
			return "", true
		}
		return st.value(p.Exp.Word), true
	case syntax.ErrorUnset, syntax.ErrorUnsetOrNull:
		return v, ok
	}
	return "", false
}

// fold evaluates the few command substitutions whose output is a
// constant: $(echo WORDS), $(printf WORD) and $(pwd) after a literal cd.
// Only one level is folded, so the cost stays linear.
func (st *state) fold(cs *syntax.CmdSubst) (string, bool) {
	if len(cs.Stmts) != 1 {
		return "", false
	}
	s := cs.Stmts[0]
	ce, ok := s.Cmd.(*syntax.CallExpr)
	if !ok || len(s.Redirs) > 0 || s.Background || len(ce.Args) == 0 || len(ce.Assigns) > 0 {
		return "", false
	}
	for _, w := range ce.Args {
		for _, p := range w.Parts {
			switch p.(type) {
			case *syntax.Lit, *syntax.SglQuoted:
			default:
				return "", false
			}
		}
	}
	argv := st.fields(ce.Args)
	if len(argv) == 0 {
		return "", false
	}
	switch argv[0] {
	case "echo":
		return echoText(argv[1:]), true
	case "printf":
		if len(argv) == 2 && !strings.Contains(argv[1], "%") {
			return strings.TrimRight(strings.ReplaceAll(argv[1], `\n`, "\n"), "\n"), true
		}
	case "pwd":
		return st.cwd, st.cwd != ""
	}
	return "", false
}

// echoText is what echo prints for args (its -n/-e/-E flags skipped).
func echoText(args []string) string {
	for len(args) > 0 && len(args[0]) > 1 && strings.Trim(args[0], "-neE") == "" && args[0][0] == '-' {
		args = args[1:]
	}
	return strings.Join(args, " ")
}

// expandBraces expands the BraceExp parts left by syntax.SplitBraces into
// alternatives, at most maxFields of them.
func expandBraces(parts []syntax.WordPart) [][]syntax.WordPart {
	idx := -1
	for i, p := range parts {
		if _, ok := p.(*syntax.BraceExp); ok {
			idx = i
			break
		}
	}
	if idx < 0 {
		return [][]syntax.WordPart{parts}
	}
	be := parts[idx].(*syntax.BraceExp)
	var elems [][]syntax.WordPart
	if be.Sequence {
		elems = braceSequence(be)
	} else {
		for _, e := range be.Elems {
			elems = append(elems, e.Parts)
		}
	}
	var out [][]syntax.WordPart
	for _, e := range elems {
		if len(out) >= maxFields {
			break
		}
		alt := make([]syntax.WordPart, 0, len(parts)+len(e))
		alt = append(alt, parts[:idx]...)
		alt = append(alt, e...)
		alt = append(alt, parts[idx+1:]...)
		for _, x := range expandBraces(alt) {
			if len(out) >= maxFields {
				return out
			}
			out = append(out, x)
		}
	}
	if len(out) == 0 {
		return [][]syntax.WordPart{parts[:idx]}
	}
	return out
}

// braceSequence expands {1..5} or {a..e}, at most maxFields elements.
func braceSequence(be *syntax.BraceExp) [][]syntax.WordPart {
	if len(be.Elems) < 2 {
		return nil
	}
	from, to := be.Elems[0].Lit(), be.Elems[1].Lit()
	var vals []string
	if a, err := strconv.Atoi(from); err == nil {
		if b, err := strconv.Atoi(to); err == nil {
			step := 1
			if b < a {
				step = -1
			}
			for i := a; len(vals) < maxFields; i += step {
				vals = append(vals, strconv.Itoa(i))
				if i == b {
					break
				}
			}
		}
	} else if len(from) == 1 && len(to) == 1 {
		step := 1
		if to[0] < from[0] {
			step = -1
		}
		for c := int(from[0]); len(vals) < maxFields; c += step {
			vals = append(vals, string(rune(c)))
			if c == int(to[0]) {
				break
			}
		}
	}
	out := make([][]syntax.WordPart, len(vals))
	for i, v := range vals {
		out[i] = []syntax.WordPart{&syntax.Lit{Value: v}}
	}
	return out
}

// unescapeLit removes the backslashes of an unquoted literal.
func unescapeLit(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] == '\n' {
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unescapeDouble removes the backslashes that are special inside double
// quotes (before $ ` " \ and newline).
func unescapeDouble(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case '$', '`', '"', '\\':
				i++
			case '\n':
				i++
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// ansiC decodes the escapes of a $'...' string.
func ansiC(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		i++
		switch s[i] {
		case 'a':
			b.WriteByte('\a')
		case 'b':
			b.WriteByte('\b')
		case 'e', 'E':
			b.WriteByte(0x1b)
		case 'f':
			b.WriteByte('\f')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		case 'v':
			b.WriteByte('\v')
		case 'c':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i] & 0x1f)
			}
		case 'x', 'u', 'U':
			max := 2
			switch s[i] {
			case 'u':
				max = 4
			case 'U':
				max = 8
			}
			j := i + 1
			for j < len(s) && j-i-1 < max && isHex(s[j]) {
				j++
			}
			if j == i+1 {
				b.WriteByte('\\')
				b.WriteByte(s[i])
				continue
			}
			n, _ := strconv.ParseUint(s[i+1:j], 16, 32)
			if s[i] == 'x' {
				b.WriteByte(byte(n))
			} else if utf8.ValidRune(rune(n)) {
				b.WriteRune(rune(n))
			}
			i = j - 1
		case '0', '1', '2', '3', '4', '5', '6', '7':
			j := i
			for j < len(s) && j-i < 3 && s[j] >= '0' && s[j] <= '7' {
				j++
			}
			n, _ := strconv.ParseUint(s[i:j], 8, 16)
			b.WriteByte(byte(n))
			i = j - 1
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}
