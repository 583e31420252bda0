package security

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// Bounds on the work done for one call, so that any input is judged in
// bounded time and memory.
const (
	maxInput   = 64 << 10  // bytes of one command line; longer → too-long
	maxDepth   = 8         // nested sh -c, eval, wrappers; deeper → too-deep
	maxNest    = 200       // nested compound commands; deeper → too-deep
	maxEvents  = 4096      // simple commands judged; more → too-complex
	maxParsed  = 128 << 10 // bytes parsed in all, nested strings included
	maxLoopRun = 8         // for-loop items tried one by one
	maxText    = 300       // bytes of command text kept in a finding
)

// maxScanned bounds the text word-scanned for one input that is too long
// to parse (half the largest request berth serve reads).
const maxScanned = 512 << 10

// The messages of the analyzer's own findings. What berth could not
// analyze it cannot vouch for: too-long, too-deep and too-complex are HIGH,
// so that a deny policy refuses them (unparsable text is MEDIUM: its word
// scan covers all of it).
const (
	msgUnparsable = "The command is not valid bash, so it could not be analyzed properly; it was scanned word by word instead and may hide more than was found. Parse error: "
	msgTooLong    = "The command is longer than 64 KiB, too long to analyze: it was only scanned word by word (up to 512 KiB), which can miss what it does. berth cannot tell what it did not analyze, so under deny it is refused; write big files with the files API, not through a command."
	msgTooDeep    = "The command nests sh -c, eval, wrappers or subshells too deeply to follow: the innermost part was only scanned word by word. berth cannot tell what it did not analyze, so under deny it is refused."
	msgTooComplex = "The command has too many parts to analyze within the time bound: the rest was not analyzed. berth cannot tell what it did not analyze, so under deny it is refused; split the command, or write scripts with the files API."
)

// script parses src as bash and judges every command in it. st is the
// shell state it runs in (shared for eval, forked for sh -c).
func (r *run) script(src string, st *state, depth int) {
	if !r.admit(src, depth) {
		return
	}
	f, err := r.parser.Parse(strings.NewReader(src), "")
	if err != nil {
		r.internal(idUnparsable, msgUnparsable+err.Error(), src)
		r.scan(src, depth, false)
		return
	}
	fr := &frame{src: src, depth: depth}
	r.stmts(fr, f.Stmts, st, ctx{})
}

// admit checks the bounds before src is parsed, and readies the parser.
// False: src is not to be parsed, because the run is stopped or src was
// too deep, too long or too complex (reported, and word-scanned).
func (r *run) admit(src string, depth int) bool {
	if r.stopped {
		return false
	}
	if depth > maxDepth {
		r.internal(idTooDeep, msgTooDeep, src)
		r.scanLong(src, depth, true)
		return false
	}
	if len(src) > maxInput {
		r.internal(idTooLong, msgTooLong, src)
		r.scanLong(src, depth, false)
		return false
	}
	if bracketDepth(src) > maxNest {
		// The parser's time grows faster than linearly with nesting; no
		// real command nests this deep.
		r.internal(idTooDeep, msgTooDeep, src)
		r.scan(src, depth, false)
		return false
	}
	r.parsed += len(src)
	if r.parsed > maxParsed {
		r.internal(idTooComplex, msgTooComplex, src)
		r.stopped = true
		return false
	}
	if r.parser == nil {
		if p, ok := r.a.parsers.Get().(*syntax.Parser); ok {
			r.parser = p
		} else {
			r.parser = syntax.NewParser(syntax.Variant(syntax.LangBash))
		}
	}
	return true
}

// scanLong word-scans src, which may be longer than maxInput, in chunks of
// at most maxInput bytes (each cut after a line or command separator, or a
// blank, when there is one in its second half), up to maxScanned bytes and
// as long as the run's bounds allow: so that a command placed past the
// first 64 KiB is still found.
func (r *run) scanLong(src string, depth int, flat bool) {
	src = src[:min(len(src), maxScanned)]
	for src != "" && !r.stopped {
		n := len(src)
		if n > maxInput {
			n = maxInput
			if i := strings.LastIndexAny(src[:n], "\n;&|"); i >= maxInput/2 {
				n = i + 1
			} else if i := strings.LastIndexAny(src[:n], " \t"); i >= maxInput/2 {
				n = i + 1
			}
		}
		r.scan(src[:n], depth, flat)
		src = src[n:]
	}
}

// release returns the run's parser to the analyzer's pool.
func (r *run) release() {
	if r.parser != nil {
		r.a.parsers.Put(r.parser)
		r.parser = nil
	}
}

// scan is the fallback for text that does not parse (or is too long or
// too deep): it cuts the text at shell operators, splits the pieces on
// blanks, drops quotes, and judges each piece as a simple command (a pipe
// still feeds the next piece). Inside a piece, every later word that names
// a program some rule is about starts another candidate command, so that
// "sudo env eval rm -rf /" is still seen. flat: do not follow wrappers
// and sh -c (the depth bound was hit).
func (r *run) scan(src string, depth int, flat bool) {
	type piece struct {
		text string
		pipe bool // output goes to the next piece
	}
	var pieces []piece
	start := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case '\n', ';', '&', '|', '(', ')', '`', '{', '}':
		default:
			continue
		}
		pipe := c == '|' && (i+1 >= len(src) || src[i+1] != '|') && (i == 0 || src[i-1] != '|')
		pieces = append(pieces, piece{src[start:i], pipe})
		start = i + 1
	}
	pieces = append(pieces, piece{src[start:], false})
	type words struct {
		argv, writes, reads []string
	}
	ws := make([]words, len(pieces))
	home := strings.NewReplacer("${HOME}", "~", "$HOME", "~")
	for i, p := range pieces {
		var redir *[]string // the next word is a redirection target
		for _, f := range strings.Fields(p.text) {
			if strings.Contains(f, "$") {
				f = home.Replace(f)
			}
			f = strings.Map(func(c rune) rune {
				if c == '\'' || c == '"' || c == '\\' {
					return -1
				}
				return c
			}, f)
			if j := strings.IndexAny(f, "<>"); j >= 0 && isFD(f[:j]) {
				target := &ws[i].writes
				if f[j] == '<' {
					target = &ws[i].reads
				}
				if t := strings.TrimLeft(f[j:], "<>&"); t != "" {
					*target = append(*target, t)
				} else {
					redir = target
				}
				continue
			}
			if redir != nil {
				*redir = append(*redir, f)
				redir = nil
				continue
			}
			if f == "" {
				continue
			}
			if n, _, ok := strings.Cut(f, "="); ok && len(ws[i].argv) == 0 && validVarName(n) {
				continue
			}
			ws[i].argv = append(ws[i].argv, f)
		}
	}
	for i, p := range pieces {
		w := ws[i]
		if len(w.argv) == 0 && len(w.writes) == 0 && len(w.reads) == 0 {
			continue
		}
		var cx ctx
		if p.pipe && i+1 < len(ws) && len(ws[i+1].argv) > 0 {
			if prog, _ := effective(ws[i+1].argv); prog != "" {
				cx.sinks = []string{prog}
			}
		}
		text := strings.TrimSpace(p.text)
		if r.stopped {
			return
		}
		// A piece judged as one command keeps its first words only: a
		// later program name starts a command of its own (wordScan).
		c := call{argv: w.argv[:min(len(w.argv), maxScanArgv)], writes: w.writes, reads: w.reads, text: text}
		if flat {
			c.argv = nil
			r.simple(c, newState(), cx, 0)
		} else {
			r.simple(c, newState(), cx, depth+1)
		}
		r.wordScan(w.argv, !flat, "", cx.sinks, text)
	}
}

// bracketDepth estimates the deepest nesting of (, { and ` in src, outside
// single quotes and escapes. It only guards the parser, so an estimate is
// enough.
func bracketDepth(src string) int {
	depth, deepest := 0, 0
	inSingle, inDouble, inTick := false, false, false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case inSingle:
			if c == '\'' {
				inSingle = false
			}
		case c == '\\':
			i++
		case c == '\'' && !inDouble:
			inSingle = true
		case c == '"':
			inDouble = !inDouble
		case c == '`':
			if inTick = !inTick; inTick {
				depth++
			} else {
				depth--
			}
		case c == '(' || c == '{' || c == '[':
			depth++
		case c == ')' || c == '}' || c == ']':
			depth--
		}
		deepest = max(deepest, depth)
	}
	return deepest
}
