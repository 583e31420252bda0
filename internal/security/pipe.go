package security

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// pipeline judges a | b | c: each stage runs in a subshell; a stage's
// sinks are the programs of the later stages; echo/printf/here-doc text
// flows into the next stage's stdin.
func (r *run) pipeline(fr *frame, s *syntax.Stmt, st *state, cx ctx) {
	var stages []*syntax.Stmt
	cur := s
	for {
		b, ok := cur.Cmd.(*syntax.BinaryCmd)
		if !ok || b.Op != syntax.Pipe && b.Op != syntax.PipeAll ||
			cur != s && (len(cur.Redirs) > 0 || cur.Negated || cur.Background) {
			stages = append(stages, cur)
			break
		}
		stages = append(stages, b.Y)
		cur = b.X
	}
	// stages is last-to-first.
	sinks := make([][]string, len(stages))
	down := cx.sinks
	for i := 0; i < len(stages); i++ {
		sinks[i] = down
		if i+1 < len(stages) {
			down = appendSinks(append([]string(nil), down...), r.heads(stages[i], st, 0))
		}
	}
	var stdin *string = cx.stdin
	for i := len(stages) - 1; i >= 0 && !r.stopped; i-- {
		c := cx
		c.sinks, c.stdin = sinks[i], stdin
		r.stmt(fr, stages[i], st.fork(), c)
		stdin = st.outText(stages[i])
	}
}

func appendSinks(dst, add []string) []string {
	for _, a := range add {
		if len(dst) >= maxSinks {
			break
		}
		if !has(dst, a) {
			dst = append(dst, a)
		}
	}
	return dst
}

// heads returns the programs that read a statement's stdin, for the sinks
// of what is piped into it. Shells and interpreters count only when they
// run the code they read (sh, bash -s, python3 with no script).
func (r *run) heads(s *syntax.Stmt, st *state, n int) []string {
	if n > 8 || s == nil {
		return nil
	}
	switch cmd := s.Cmd.(type) {
	case *syntax.CallExpr:
		if len(cmd.Args) == 0 {
			return nil
		}
		prog, code := effective(st.fields(cmd.Args))
		if prog == "" || (isShell(prog) || isInterp(prog)) && !code {
			return nil
		}
		return []string{prog}
	case *syntax.BinaryCmd:
		out := r.heads(cmd.X, st, n+1)
		if cmd.Op == syntax.AndStmt || cmd.Op == syntax.OrStmt {
			out = appendSinks(out, r.heads(cmd.Y, st, n+1))
		}
		return out
	case *syntax.Block:
		return r.headsOf(cmd.Stmts, st, n)
	case *syntax.Subshell:
		return r.headsOf(cmd.Stmts, st, n)
	}
	return nil
}

func (r *run) headsOf(list []*syntax.Stmt, st *state, n int) []string {
	var out []string
	for i, s := range list {
		if i >= 4 {
			break
		}
		out = appendSinks(out, r.heads(s, st, n+1))
	}
	return out
}

// outText is what a pipeline stage prints, when it is known: the
// arguments of echo or printf, or cat of a here-document.
func (st *state) outText(s *syntax.Stmt) *string {
	ce, ok := s.Cmd.(*syntax.CallExpr)
	if !ok || len(ce.Args) == 0 {
		return nil
	}
	argv := st.fields(ce.Args)
	if len(argv) == 0 {
		return nil
	}
	var t string
	switch progName(argv[0]) {
	case "echo":
		t = echoText(argv[1:])
	case "printf":
		t = strings.ReplaceAll(strings.Join(argv[1:], " "), `\n`, "\n")
	case "find":
		// What find prints starts with its starting points, which is
		// enough for find / | xargs rm -rf.
		t = strings.Join(findStarts(argv[1:]), "\n")
	case "cat":
		if len(argv) > 1 {
			return nil
		}
		rd := st.redirs(s.Redirs)
		if rd.stdin == nil {
			return nil
		}
		t = *rd.stdin
	default:
		return nil
	}
	return &t
}
