package security

import (
	"path"
	"strings"
)

// A wrapSpec says how a wrapper program (sudo, env, timeout, xargs...)
// finds the command it runs in its arguments.
type wrapSpec struct {
	values  []string // options that take the next word as their value
	scripts []string // options whose value is a shell command string (su -c)
	none    []string // options after which no command is run (command -v)
	skip    int      // operands before the command (timeout DURATION)
	assigns bool     // NAME=VALUE words before the command (env)
	join    bool     // the rest is joined into one shell command (watch, ssh)
	noArgv  bool     // the operands are not a command (su USER ARGS)
	dash    bool     // a lone "-" is an option (su -)
	dflt    string   // the command run when none is given (xargs: echo)
}

// wrappers is the constant table of programs that run another command.
var wrappers = map[string]wrapSpec{
	"sudo": {values: []string{"-u", "-g", "-h", "-p", "-C", "-D", "-r", "-t", "-U", "-T", "-R",
		"--user", "--group", "--host", "--prompt", "--close-from", "--chdir", "--role", "--type",
		"--other-user", "--command-timeout", "--chroot"}},
	"doas":         {values: []string{"-u", "-C"}},
	"pkexec":       {values: []string{"--user"}},
	"su":           {values: []string{"-s", "--shell", "-g", "--group", "-G", "--supp-group", "-w", "--whitelist-environment"}, scripts: []string{"-c", "--command", "--session-command"}, skip: 1, noArgv: true, dash: true},
	"runuser":      {values: []string{"-u", "--user", "-g", "--group", "-G", "--supp-group", "-s", "--shell", "-w", "--whitelist-environment"}, scripts: []string{"-c", "--command", "--session-command"}, dash: true},
	"env":          {values: []string{"-u", "--unset", "-C", "--chdir"}, scripts: []string{"-S", "--split-string"}, assigns: true},
	"nice":         {values: []string{"-n", "--adjustment"}},
	"nohup":        {},
	"setsid":       {},
	"unbuffer":     {},
	"fakeroot":     {},
	"builtin":      {},
	"busybox":      {},
	"torsocks":     {},
	"proxychains":  {values: []string{"-f"}},
	"proxychains4": {values: []string{"-f"}},
	"command":      {none: []string{"-v", "-V"}},
	"exec":         {values: []string{"-a"}},
	"timeout":      {values: []string{"-s", "--signal", "-k", "--kill-after"}, skip: 1},
	"xargs": {values: []string{"-a", "-d", "-E", "-I", "-L", "-n", "-P", "-s", "--arg-file", "--delimiter",
		"--max-args", "--max-procs", "--max-chars", "--max-lines", "--eof"}, dflt: "echo"},
	"stdbuf":  {values: []string{"-i", "-o", "-e"}},
	"ionice":  {values: []string{"-c", "-n", "-p", "-P", "-u"}},
	"chrt":    {skip: 1},
	"taskset": {skip: 1},
	"time":    {values: []string{"-f", "-o", "--format", "--output"}},
	"strace":  {values: []string{"-o", "-e", "-p", "-s", "-u", "-E", "-a", "-b", "-I", "-O", "-P", "-S", "-X"}},
	"ltrace":  {values: []string{"-o", "-e", "-p", "-s", "-u", "-a", "-n"}},
	"nsenter": {values: []string{"-t", "-S", "-G", "-w", "-r", "--target", "--setuid", "--setgid", "--wd", "--root"}},
	"unshare": {},
	"chroot":  {values: []string{"--userspec", "--groups"}, skip: 1, dflt: "sh"},
	"systemd-run": {values: []string{"-u", "--unit", "-p", "--property", "-M", "--machine", "-E", "--setenv",
		"--description", "--slice", "-H", "--host", "--uid", "--gid", "--working-directory"}},
	"flock": {values: []string{"-w", "-E", "--timeout", "--conflict-exit-code"}, scripts: []string{"-c", "--command"}, skip: 1},
	"script": {values: []string{"-t", "-T", "-E", "-B", "-I", "-O", "--timing", "--log-timing", "--echo",
		"--log-io", "--log-in", "--log-out"}, scripts: []string{"-c", "--command"}, noArgv: true},
	"watch": {values: []string{"-n", "--interval", "-q", "--equexit"}, join: true},
	"sg":    {scripts: []string{"-c"}, skip: 1, join: true},
	"ssh": {values: []string{"-p", "-i", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-b", "-c", "-e", "-E",
		"-m", "-O", "-Q", "-S", "-W", "-w", "-B", "-I"}, skip: 1, join: true},
}

// unwrapped is the command a wrapper runs: an argv, shell strings, and
// NAME=VALUE settings for its environment.
type unwrapped struct {
	argv    []string
	scripts []string
	env     [][2]string
}

func has(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// unwrap finds the command that the wrapper w runs, given its arguments.
func (w *wrapSpec) unwrap(args []string) unwrapped {
	var u unwrapped
	skip := w.skip
	i := 0
	for i < len(args) {
		a := args[i]
		if a == "--" {
			i++
			break
		}
		if len(a) > 1 && a[0] == '-' || w.dash && a == "-" {
			name, val, eq := strings.Cut(a, "=")
			short := len(a) > 2 && a[1] != '-'
			switch {
			case has(w.scripts, name):
				if eq {
					u.scripts = append(u.scripts, val)
				} else if i+1 < len(args) {
					u.scripts = append(u.scripts, args[i+1])
					i++
				}
			case short && has(w.scripts, "-"+a[len(a)-1:]):
				if i+1 < len(args) { // su -lc 'cmd'
					u.scripts = append(u.scripts, args[i+1])
					i++
				}
			case has(w.none, a):
				return unwrapped{scripts: u.scripts}
			case has(w.values, name) && !eq:
				i++
			}
			i++
			continue
		}
		if w.assigns {
			if name, val, ok := strings.Cut(a, "="); ok && validVarName(name) {
				u.env = append(u.env, [2]string{name, val})
				i++
				continue
			}
		}
		if skip > 0 {
			skip--
			i++
			continue
		}
		break
	}
	for ; skip > 0 && i < len(args); skip-- {
		i++
	}
	rest := args[min(i, len(args)):]
	switch {
	case w.noArgv:
	case w.join:
		if len(rest) > 0 {
			u.scripts = append(u.scripts, strings.Join(rest, " "))
		}
	case len(rest) > 0:
		u.argv = rest
	case w.dflt != "":
		u.argv = []string{w.dflt}
	}
	return u
}

func validVarName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return true
}

// progName is the basename of a command word, "" when it is not known.
func progName(w string) string {
	if w == "" || containsHole(w) {
		return ""
	}
	return path.Base(w)
}

func isShell(prog string) bool {
	switch prog {
	case "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh", "csh", "tcsh", "fish", "rbash":
		return true
	}
	return false
}

// isInterp reports whether prog is a script interpreter that runs the
// program it reads on stdin when given no script.
func isInterp(prog string) bool {
	switch prog {
	case "perl", "ruby", "node", "nodejs", "php", "lua", "deno", "bun":
		return true
	}
	return strings.HasPrefix(prog, "python") || strings.HasPrefix(prog, "pypy")
}

// shellCall is how a shell was asked to run code.
type shellCall struct {
	script    string   // the -c string
	hasScript bool     // -c was given
	stdin     bool     // the shell runs what it reads on stdin
	args      []string // $0, $1... after the -c string
}

// parseShell reads a shell's options: -c STRING, -s, or a script file.
func parseShell(args []string) shellCall {
	var c shellCall
	cflag, sflag := false, false
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "--" || a == "-" {
			i++
			break
		}
		if len(a) < 2 || a[0] != '-' && a[0] != '+' {
			break
		}
		switch {
		case a == "-o" || a == "+o" || a == "-O" || a == "+O" || a == "--rcfile" || a == "--init-file":
			i++
		case strings.HasPrefix(a, "--"):
			if a == "--command" { // fish
				cflag = true
			}
		default:
			cflag = cflag || strings.ContainsRune(a[1:], 'c')
			sflag = sflag || strings.ContainsRune(a[1:], 's')
		}
	}
	rest := args[min(i, len(args)):]
	switch {
	case cflag:
		if len(rest) > 0 {
			c.script, c.hasScript, c.args = rest[0], true, rest[1:]
		}
	case sflag || len(rest) == 0:
		c.stdin = true
	}
	return c
}

// interpStdin reports whether an interpreter reads its program from stdin:
// no code option and no script operand (or "-").
func interpStdin(prog string, args []string) bool {
	for _, a := range args {
		switch {
		case a == "-":
			return true
		case a == "--":
			return false
		case strings.HasPrefix(a, "-"):
			name, _, _ := strings.Cut(a, "=")
			switch name {
			case "-c", "-m", "-e", "-E", "-r", "-p", "--eval", "--print":
				return false
			}
			if strings.HasPrefix(prog, "python") && len(a) > 2 && a[1] != '-' && strings.ContainsAny(a[1:], "cm") {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// pythonModule returns the argv of python -m MODULE ARGS, if that is the
// form of a python command line.
func pythonModule(args []string) []string {
	for i, a := range args {
		switch {
		case a == "-m" && i+1 < len(args):
			return args[i+1:]
		case strings.HasPrefix(a, "-m") && len(a) > 2:
			return append([]string{a[2:]}, args[i+1:]...)
		case a == "-c" || a == "-" || !strings.HasPrefix(a, "-"):
			return nil
		}
	}
	return nil
}

// effective follows wrappers (sudo, env, xargs, python -m...) to the
// program that really runs, and tells whether it executes code from stdin.
func effective(argv []string) (string, bool) {
	for range maxDepth {
		if len(argv) == 0 {
			return "", false
		}
		prog := progName(argv[0])
		switch {
		case isShell(prog):
			return prog, parseShell(argv[1:]).stdin
		case strings.HasPrefix(prog, "python"):
			if m := pythonModule(argv[1:]); m != nil {
				argv = m
				continue
			}
			return prog, interpStdin(prog, argv[1:])
		case isInterp(prog):
			return prog, interpStdin(prog, argv[1:])
		}
		w, ok := wrappers[prog]
		if !ok {
			return prog, false
		}
		u := w.unwrap(argv[1:])
		if u.argv == nil {
			return prog, false
		}
		argv = u.argv
	}
	return "", false
}

// findExecs returns the commands that find runs with -exec, -execdir,
// -ok and -okdir, with {} replaced by each starting point of the search.
func findExecs(args []string) [][]string {
	starts, i := findStartsAt(args)
	var out [][]string
	for ; i < len(args); i++ {
		switch args[i] {
		case "-exec", "-execdir", "-ok", "-okdir":
		default:
			continue
		}
		j := i + 1
		for j < len(args) && args[j] != ";" && args[j] != "+" {
			j++
		}
		group := args[i+1 : j]
		i = j
		if len(group) == 0 {
			continue
		}
		for _, s := range starts {
			if len(out) >= 8 {
				return out
			}
			g := make([]string, len(group))
			for k, w := range group {
				g[k] = strings.ReplaceAll(w, "{}", s)
			}
			out = append(out, g)
		}
	}
	return out
}

// findStarts returns find's starting points ("." when none is given).
func findStarts(args []string) []string {
	s, _ := findStartsAt(args)
	return s
}

func findStartsAt(args []string) ([]string, int) {
	var starts []string
	i := 0
	for ; i < len(args); i++ {
		a := args[i]
		if a == "-H" || a == "-L" || a == "-P" || strings.HasPrefix(a, "-O") {
			continue
		}
		if a == "-D" {
			i++
			continue
		}
		break
	}
	for ; i < len(args); i++ {
		a := args[i]
		if strings.HasPrefix(a, "-") || a == "(" || a == "!" || a == "," {
			break
		}
		if len(starts) < 4 {
			starts = append(starts, a)
		}
	}
	if len(starts) == 0 {
		starts = []string{"."}
	}
	return starts, i
}

// xargsItems builds the commands xargs runs when what it reads is known
// (echo / | xargs rm -rf, find / | xargs rm -rf): the items are appended,
// or put in place of the -I string.
func xargsItems(xargsArgs, inner []string, stdin string) [][]string {
	items := strings.Fields(stdin)
	if len(items) == 0 {
		return nil
	}
	if len(items) > 16 {
		items = items[:16]
	}
	repl := ""
	for i, a := range xargsArgs {
		switch {
		case a == "-I" && i+1 < len(xargsArgs):
			repl = xargsArgs[i+1]
		case strings.HasPrefix(a, "-I") && len(a) > 2:
			repl = a[2:]
		case strings.HasPrefix(a, "--replace="):
			repl = a[len("--replace="):]
		case a == "-i" || a == "--replace":
			repl = "{}"
		}
	}
	if repl == "" {
		return [][]string{append(append([]string(nil), inner...), items...)}
	}
	var out [][]string
	for _, it := range items[:min(len(items), 4)] {
		g := make([]string, len(inner))
		for k, w := range inner {
			g[k] = strings.ReplaceAll(w, repl, it)
		}
		out = append(out, g)
	}
	return out
}
