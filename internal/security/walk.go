package security

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// run is the work of one Command, Argv or File call.
type run struct {
	a        *Analyzer
	findings []Finding
	seen     map[string]struct{}
	events   int  // simple commands judged
	parsed   int  // bytes parsed
	stopped  bool // a bound was hit: stop
	parser   *syntax.Parser
	env      string // the environment variable being judged (Env), if any
}

func (a *Analyzer) newRun() *run { return &run{a: a} }

// frame is one parsed script: its text (for finding texts) and how deep
// in sh -c / eval it sits.
type frame struct {
	src   string
	depth int
}

// ctx is what flows into a command from around it.
type ctx struct {
	sinks []string // programs that consume this command's output
	stdin *string  // text known to arrive on stdin (echo ... | sh)
	nest  int      // compound-command nesting
	loop  bool     // inside a for loop that is being unrolled
}

// call is a simple command ready to judge.
type call struct {
	argv   []string
	text   string
	writes []string    // output redirection targets
	reads  []string    // input redirection sources
	env    [][2]string // NAME=VALUE for the command's environment
}

// maxSinks bounds the programs remembered downstream of a command.
const maxSinks = 16

func (r *run) result() Assessment {
	as := Assessment{Findings: r.findings}
	for _, f := range r.findings {
		if f.Level > as.Level {
			as.Level = f.Level
		}
	}
	return as
}

// add records a finding once per rule and command text.
func (r *run) add(id string, level Level, msg, text string) {
	text = strings.TrimSpace(text)
	if len(text) > maxText {
		cut := maxText
		for cut > 0 && text[cut]&0xC0 == 0x80 {
			cut--
		}
		text = text[:cut] + "…"
	}
	text = strings.ReplaceAll(text, hole, "…")
	key := id + "\x00" + r.env + "\x00" + text
	if _, ok := r.seen[key]; ok {
		return
	}
	if r.seen == nil {
		r.seen = make(map[string]struct{})
	}
	r.seen[key] = struct{}{}
	r.findings = append(r.findings, Finding{RuleID: id, Level: level, Message: msg, Command: text, Env: r.env})
}

// internal records one of the analyzer's own findings: MEDIUM for
// unparsable text (its word scan covers all of it), HIGH for what was
// left unanalyzed (too-long, too-deep, too-complex).
func (r *run) internal(id, msg, text string) {
	level := LevelHigh
	if id == idUnparsable {
		level = LevelMedium
	}
	r.add(id, level, msg, text)
}

// spend counts one simple command against the bound.
func (r *run) spend(text string) bool {
	if r.stopped {
		return false
	}
	r.events++
	if r.events > maxEvents {
		r.internal(idTooComplex, msgTooComplex, text)
		r.stopped = true
		return false
	}
	return true
}

// span returns the source text of a node; for a statement, without its
// trailing ; or &.
func span(fr *frame, n syntax.Node) string {
	a, b := int(n.Pos().Offset()), int(n.End().Offset())
	if s, ok := n.(*syntax.Stmt); ok && s.Cmd != nil {
		b = int(s.Cmd.End().Offset())
		for _, r := range s.Redirs {
			b = max(b, int(r.End().Offset()))
		}
	}
	if a < 0 || b > len(fr.src) || a > b {
		return ""
	}
	return fr.src[a:b]
}

func (r *run) stmts(fr *frame, list []*syntax.Stmt, st *state, cx ctx) {
	for _, s := range list {
		if r.stopped {
			return
		}
		r.stmt(fr, s, st, cx)
	}
}

// redirs is what a statement's redirections do.
type redirs struct {
	writes []string
	reads  []string
	stdin  *string // here-string or here-document text
}

func (st *state) redirs(list []*syntax.Redirect) redirs {
	var rd redirs
	for _, x := range list {
		switch x.Op {
		case syntax.RdrOut, syntax.AppOut, syntax.RdrClob, syntax.AppClob, syntax.RdrAll,
			syntax.RdrAllClob, syntax.AppAll, syntax.AppAllClob:
			rd.writes = append(rd.writes, st.value(x.Word))
		case syntax.RdrInOut:
			v := st.value(x.Word)
			rd.writes = append(rd.writes, v)
			rd.reads = append(rd.reads, v)
		case syntax.DplOut:
			if v := st.value(x.Word); !isFD(v) {
				rd.writes = append(rd.writes, v)
			}
		case syntax.RdrIn:
			rd.reads = append(rd.reads, st.value(x.Word))
		case syntax.WordHdoc:
			t := st.value(x.Word) + "\n"
			rd.stdin = &t
		case syntax.Hdoc, syntax.DashHdoc:
			t := st.heredoc(x)
			rd.stdin = &t
		}
	}
	return rd
}

func isFD(s string) bool {
	s = strings.TrimSuffix(s, "-")
	if s == "" {
		return true
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// heredoc returns a here-document's text: literal when its delimiter is
// quoted, expanded otherwise.
func (st *state) heredoc(x *syntax.Redirect) string {
	if x.Hdoc == nil {
		return ""
	}
	quoted := true // a quoted delimiter ('EOF', "EOF", \EOF) keeps the body literal
	if x.Word != nil && len(x.Word.Parts) == 1 {
		if l, ok := x.Word.Parts[0].(*syntax.Lit); ok && !strings.Contains(l.Value, `\`) {
			quoted = false
		}
	}
	var b fieldBuilder
	for _, p := range x.Hdoc.Parts {
		if l, ok := p.(*syntax.Lit); ok && quoted {
			b.lit(l.Value)
			continue
		}
		st.part(&b, p, true, false, false)
	}
	return string(b.cur)
}

func (r *run) stmt(fr *frame, s *syntax.Stmt, st *state, cx ctx) {
	if cx.nest >= maxNest {
		text := span(fr, s)
		r.internal(idTooDeep, msgTooDeep, text)
		r.scan(text, fr.depth, true)
		return
	}
	cx.nest++
	rd := st.redirs(s.Redirs)
	if rd.stdin != nil {
		cx.stdin = rd.stdin
	}
	switch cmd := s.Cmd.(type) {
	case *syntax.CallExpr:
		r.callExpr(fr, s, cmd, st, cx, rd)
		return
	case nil:
	default:
		r.compound(fr, s, st, cx)
	}
	if len(rd.writes) > 0 || len(rd.reads) > 0 {
		r.simple(call{writes: rd.writes, reads: rd.reads, text: span(fr, s)}, st, cx, fr.depth)
	}
	for _, x := range s.Redirs {
		r.substs(fr, x, st, cx, nil)
	}
}

func (r *run) callExpr(fr *frame, s *syntax.Stmt, ce *syntax.CallExpr, st *state, cx ctx, rd redirs) {
	if len(ce.Args) == 0 {
		for _, as := range ce.Assigns {
			r.substs(fr, as, st, cx, nil)
			st.assign(as)
		}
		if len(rd.writes) > 0 || len(rd.reads) > 0 {
			r.simple(call{writes: rd.writes, reads: rd.reads, text: span(fr, s)}, st, cx, fr.depth)
		}
		for _, x := range s.Redirs {
			r.substs(fr, x, st, cx, nil)
		}
		return
	}
	argv := st.fields(ce.Args)
	c := call{argv: argv, text: span(fr, s), writes: rd.writes, reads: rd.reads}
	for _, as := range ce.Assigns {
		if as.Name != nil && as.Value != nil && !as.Append && as.Index == nil {
			c.env = append(c.env, [2]string{as.Name.Value, st.value(as.Value)})
		}
	}
	// Command substitutions in the arguments feed the command: for
	// sh -c "$(curl ...)" the curl output is run by sh.
	var sinks []string
	if prog, _ := effective(argv); prog != "" {
		sinks = []string{prog}
	}
	for _, as := range ce.Assigns {
		r.substs(fr, as, st, cx, nil)
	}
	for _, w := range ce.Args {
		r.substs(fr, w, st, cx, sinks)
	}
	for _, x := range s.Redirs {
		r.substs(fr, x, st, cx, sinks)
	}
	r.simple(c, st, cx, fr.depth)
}

// assign applies NAME=VALUE to the state.
func (st *state) assign(as *syntax.Assign) {
	if as.Name == nil || as.Naked {
		return
	}
	name := as.Name.Value
	if as.Array != nil || as.Index != nil {
		st.forget(name)
		return
	}
	v := st.value(as.Value) // expands a leading ~ too
	if as.Append {
		old, ok := st.lookup(name)
		if !ok {
			st.forget(name)
			return
		}
		v = old + v
	}
	st.set(name, v)
}

// substs judges the command and process substitutions inside node (not
// descending into them: the walk does), with their output going to sinks.
func (r *run) substs(fr *frame, node syntax.Node, st *state, cx ctx, sinks []string) {
	if node == nil || r.stopped || plain(node) {
		return
	}
	syntax.Walk(node, func(n syntax.Node) bool {
		if r.stopped {
			return false
		}
		switch n := n.(type) {
		case *syntax.CmdSubst:
			r.stmts(fr, n.Stmts, st.fork(), ctx{sinks: sinks, nest: cx.nest + 1})
			return false
		case *syntax.ProcSubst:
			r.stmts(fr, n.Stmts, st.fork(), ctx{sinks: sinks, nest: cx.nest + 1})
			return false
		}
		return true
	})
}

func (r *run) compound(fr *frame, s *syntax.Stmt, st *state, cx ctx) {
	switch cmd := s.Cmd.(type) {
	case *syntax.BinaryCmd:
		if cmd.Op == syntax.Pipe || cmd.Op == syntax.PipeAll {
			r.pipeline(fr, s, st, cx)
			return
		}
		// A list a && b || c, flattened so that long lists do not nest.
		var list []*syntax.Stmt
		cur := s
		for {
			b, ok := cur.Cmd.(*syntax.BinaryCmd)
			if !ok || cur != s && (len(cur.Redirs) > 0 || cur.Negated || cur.Background) ||
				b.Op != syntax.AndStmt && b.Op != syntax.OrStmt {
				list = append(list, cur)
				break
			}
			list = append(list, b.Y)
			cur = b.X
		}
		for i := len(list) - 1; i >= 0 && !r.stopped; i-- {
			r.stmt(fr, list[i], st, cx)
			cx.stdin = nil
		}
	case *syntax.Block:
		r.stmts(fr, cmd.Stmts, st, cx)
	case *syntax.Subshell:
		r.stmts(fr, cmd.Stmts, st.fork(), cx)
	case *syntax.IfClause:
		for c := cmd; c != nil && !r.stopped; c = c.Else {
			r.stmts(fr, c.Cond, st, cx)
			r.stmts(fr, c.Then, st, cx)
		}
	case *syntax.WhileClause:
		r.stmts(fr, cmd.Cond, st, cx)
		r.stmts(fr, cmd.Do, st, cx)
	case *syntax.ForClause:
		r.forClause(fr, cmd, st, cx)
	case *syntax.CaseClause:
		r.substs(fr, cmd.Word, st, cx, nil)
		for _, item := range cmd.Items {
			for _, p := range item.Patterns {
				r.substs(fr, p, st, cx, nil)
			}
			r.stmts(fr, item.Stmts, st, cx)
		}
	case *syntax.FuncDecl:
		if cmd.Name != nil && forkBomb(cmd.Name.Value, cmd.Body) {
			r.match(&event{shape: shapeForkBomb, text: span(fr, s)})
		}
		if cmd.Body != nil {
			r.stmt(fr, cmd.Body, st.fork(), cx)
		}
	case *syntax.DeclClause:
		for _, as := range cmd.Args {
			r.substs(fr, as, st, cx, nil)
			st.assign(as)
		}
	case *syntax.TimeClause:
		if cmd.Stmt != nil {
			r.stmt(fr, cmd.Stmt, st, cx)
		}
	case *syntax.CoprocClause:
		if cmd.Stmt != nil {
			r.stmt(fr, cmd.Stmt, st.fork(), cx)
		}
	case *syntax.TestDecl:
		if cmd.Body != nil {
			r.stmt(fr, cmd.Body, st.fork(), cx)
		}
	default: // arithmetic, [[ ]], let: only substitutions can run commands
		r.substs(fr, cmd, st, cx, nil)
	}
}

// forClause unrolls for x in a b c (a few literal items, outside other
// unrolled loops) so that the body sees each value; otherwise the loop
// variable is unknown and the body is judged once.
func (r *run) forClause(fr *frame, fc *syntax.ForClause, st *state, cx ctx) {
	wi, ok := fc.Loop.(*syntax.WordIter)
	if !ok {
		r.substs(fr, fc.Loop, st, cx, nil)
		r.stmts(fr, fc.Do, st, cx)
		return
	}
	for _, w := range wi.Items {
		r.substs(fr, w, st, cx, nil)
	}
	items := st.fields(wi.Items)
	if !cx.loop && len(wi.Items) > 0 && len(items) > 0 && len(items) <= maxLoopRun {
		cx.loop = true
		for _, it := range items {
			st.set(wi.Name.Value, it)
			r.stmts(fr, fc.Do, st, cx)
		}
		return
	}
	st.forget(wi.Name.Value)
	r.stmts(fr, fc.Do, st, cx)
}

// forkBomb reports whether function name runs itself in a pipe or in the
// background, as :(){ :|:& };: does.
func forkBomb(name string, body *syntax.Stmt) bool {
	if body == nil {
		return false
	}
	calls := func(s *syntax.Stmt) bool {
		if s == nil {
			return false
		}
		ce, ok := s.Cmd.(*syntax.CallExpr)
		return ok && len(ce.Args) > 0 && ce.Args[0].Lit() == name
	}
	found := false
	syntax.Walk(body, func(n syntax.Node) bool {
		if found {
			return false
		}
		switch n := n.(type) {
		case *syntax.Stmt:
			if n.Background && calls(n) {
				found = true
			}
		case *syntax.BinaryCmd:
			if (n.Op == syntax.Pipe || n.Op == syntax.PipeAll) && (calls(n.X) || calls(n.Y)) {
				found = true
			}
		}
		return !found
	})
	return found
}

// plain reports whether node is a word (or redirection, or assignment) made
// of literal text only, which cannot run anything: the common case, checked
// without a tree walk.
func plain(node syntax.Node) bool {
	switch n := node.(type) {
	case *syntax.Word:
		return plainParts(n.Parts)
	case *syntax.Redirect:
		return (n.Word == nil || plainParts(n.Word.Parts)) && (n.Hdoc == nil || plainParts(n.Hdoc.Parts))
	case *syntax.Assign:
		return n.Array == nil && n.Index == nil && (n.Value == nil || plainParts(n.Value.Parts))
	}
	return false
}

func plainParts(parts []syntax.WordPart) bool {
	for _, p := range parts {
		switch p := p.(type) {
		case *syntax.Lit, *syntax.SglQuoted:
		case *syntax.DblQuoted:
			if !plainParts(p.Parts) {
				return false
			}
		case *syntax.ParamExp:
			if p.Exp != nil || p.Index != nil || p.Slice != nil || p.Repl != nil || p.NestedParam != nil {
				return false
			}
		default:
			return false
		}
	}
	return true
}
