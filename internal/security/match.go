package security

import (
	"strings"
)

// simple judges one simple command and follows it into the commands it
// runs: sh -c strings, eval, wrappers, find -exec, python -m.
func (r *run) simple(c call, st *state, cx ctx, depth int) {
	if !r.spend(c.text) {
		return
	}
	if depth > maxDepth {
		r.internal(idTooDeep, msgTooDeep, c.text)
		r.wordScan(c.argv, false, st.cwd, cx.sinks, c.text)
		return
	}
	ev := &event{cwd: st.cwd, writes: c.writes, reads: c.reads, sinks: cx.sinks, text: c.text}
	if len(c.argv) == 0 {
		if len(c.writes) > 0 || len(c.reads) > 0 {
			r.match(ev)
		}
		return
	}
	prog := progName(c.argv[0])
	ev.prog, ev.args = prog, c.argv[1:]
	r.match(ev)
	args := c.argv[1:]
	switch {
	case prog == "":
	case prog == "cd" || prog == "pushd":
		dir := "~"
		for _, a := range args {
			if a != "--" && !(len(a) > 1 && a[0] == '-') || a == "-" {
				dir = a
				break
			}
		}
		st.chdir(dir)
	case prog == "popd":
		st.cwd = ""
	case prog == "unset":
		for _, a := range args {
			if !strings.HasPrefix(a, "-") {
				st.set(a, "")
			}
		}
	case prog == "read" || prog == "mapfile" || prog == "readarray":
		for _, a := range args {
			if validVarName(a) {
				st.forget(a)
			}
		}
	case isShell(prog):
		sc := parseShell(args)
		var code *string
		switch {
		case sc.hasScript:
			code = &sc.script
		case sc.stdin:
			code = cx.stdin
		}
		if code != nil {
			child := st.fork()
			for _, kv := range c.env {
				child.set(kv[0], kv[1])
			}
			if sc.hasScript {
				child.setPositional(sc.args)
			}
			r.script(*code, child, depth+1)
		}
	case prog == "eval":
		r.script(strings.Join(args, " "), st, depth+1)
	case prog == "find":
		for _, argv := range findExecs(args) {
			r.simple(call{argv: argv, text: c.text}, st.fork(), ctx{nest: cx.nest}, depth+1)
		}
	case strings.HasPrefix(prog, "python"):
		if m := pythonModule(args); m != nil {
			r.simple(call{argv: m, text: c.text}, st, cx, depth+1)
		}
	default:
		w, ok := wrappers[prog]
		if !ok {
			return
		}
		u := w.unwrap(args)
		env := append(append([][2]string(nil), c.env...), u.env...)
		for _, s := range u.scripts {
			child := st.fork()
			for _, kv := range env {
				child.set(kv[0], kv[1])
			}
			r.script(s, child, depth+1)
		}
		if u.argv == nil {
			return
		}
		if prog == "xargs" && cx.stdin != nil {
			if cmds := xargsItems(args, u.argv, *cx.stdin); cmds != nil {
				inner := cx
				inner.stdin = nil
				for _, argv := range cmds {
					r.simple(call{argv: argv, text: c.text, env: env}, st, inner, depth+1)
				}
				return
			}
		}
		r.simple(call{argv: u.argv, text: c.text, env: env}, st, cx, depth+1)
	}
}

// Bounds of a word scan: candidate commands per piece, words per command
// (per piece, for the command that starts the piece).
const (
	maxScanStarts = 32
	maxScanArgs   = 64
	maxScanArgv   = 256
)

// wordScan judges argv, from each word that names a program some rule is
// about, as a command of its own, without following wrappers. skipFirst:
// the caller judged argv[0] already.
func (r *run) wordScan(argv []string, skipFirst bool, cwd string, sinks []string, text string) {
	starts := 0
	for i, w := range argv {
		if i == 0 && skipFirst || len(r.a.byCmd[progName(w)]) == 0 && (i > 0 || progName(w) == "") {
			continue
		}
		if starts++; starts > maxScanStarts || !r.spend(text) {
			return
		}
		args := argv[i+1:]
		r.match(&event{prog: progName(w), args: args[:min(len(args), maxScanArgs)], cwd: cwd, sinks: sinks, text: text})
	}
}

// match records a finding for every rule that ev matches.
func (r *run) match(ev *event) {
	if ev.prog != "" {
		for _, c := range r.a.byCmd[ev.prog] {
			if c.matches(ev) {
				r.add(c.ID, c.Level, c.Message, ev.text)
			}
		}
	}
	for _, c := range r.a.others {
		if c.matches(ev) {
			r.add(c.ID, c.Level, c.Message, ev.text)
		}
	}
}

// matches reports whether every matcher that c sets matches ev.
func (c *compiled) matches(ev *event) bool {
	if c.Shape != ev.shape {
		return false
	}
	if len(c.Command) > 0 && (ev.prog == "" || !anyGlob(c.Command, ev.prog)) {
		return false
	}
	if len(c.Subcommand) > 0 || len(c.Flags) > 0 || len(c.Args) > 0 {
		ev.parse()
		if len(c.Subcommand) > 0 && (ev.sub == "" || !anyGlob(c.Subcommand, ev.sub)) {
			return false
		}
		if len(c.Flags) > 0 && !anyOf(c.Flags, ev.flags) {
			return false
		}
		if len(c.Args) > 0 && !anyOf(c.Args, ev.operands) {
			return false
		}
	}
	if len(c.paths) > 0 && !anyPath(c.paths, ev.paths()) {
		return false
	}
	if len(c.writes) > 0 && !anyPath(c.writes, ev.written()) {
		return false
	}
	if len(c.PipeTo) > 0 && !anyOf(c.PipeTo, ev.sinks) {
		return false
	}
	return true
}

func anyOf(patterns, values []string) bool {
	for _, v := range values {
		if anyGlob(patterns, v) {
			return true
		}
	}
	return false
}

func anyPath(patterns []pathPattern, subjects []subject) bool {
	for _, s := range subjects {
		for _, p := range patterns {
			if p.match(s) {
				return true
			}
		}
	}
	return false
}
