package security

import (
	"path"
	"strings"
)

// event is one simple command (or file operation) to judge against the
// rules, with what is derived from it computed on first use.
type event struct {
	prog   string
	args   []string
	cwd    string
	writes []string // output redirections, File paths
	reads  []string // input redirections
	sinks  []string
	shape  string
	text   string

	parsed   bool
	flags    []string
	operands []string
	values   []string // from key=value, --opt=value and @file words
	sub      string

	pathsDone, writesDone bool
	pathSubj, writeSubj   []subject
}

// valueFlags are, per program, options whose value is neither an operand
// nor the subcommand: git -C DIR push, ssh -i KEY host, kill -s SIG pid.
// (Options left out on purpose, such as curl -d/-F/-T, keep their value as
// an operand, so that a file they upload is seen as a path.)
var valueFlags = map[string][]string{
	"git":       {"-C", "-c", "--git-dir", "--work-tree", "--namespace", "--exec-path", "--config-env"},
	"docker":    {"-H", "--host", "-c", "--context", "--config", "-l", "--log-level"},
	"kubectl":   {"-n", "--namespace", "--context", "--kubeconfig", "-s", "--server", "--cluster", "--user"},
	"npm":       {"--prefix", "-C", "--registry", "--cache", "--userconfig"},
	"systemctl": {"-H", "--host", "-M", "--machine", "-t", "--type", "-p", "--property", "-s", "--signal"},
	"kill":      {"-s", "-n"},
	"ssh": {"-p", "-i", "-l", "-o", "-F", "-J", "-L", "-R", "-D", "-b", "-c", "-e", "-E", "-m", "-O", "-Q",
		"-S", "-W", "-w", "-B", "-I"},
	"scp":   {"-i", "-P", "-o", "-F", "-c", "-l", "-S", "-J"},
	"sftp":  {"-i", "-P", "-o", "-F", "-b", "-c", "-l", "-S", "-J", "-R", "-B"},
	"rsync": {"-e", "--rsh", "--rsync-path", "--exclude", "--include", "--filter", "-f", "--log-file", "-T", "--temp-dir", "--port"},
	"curl": {"-o", "--output", "-H", "--header", "-X", "--request", "-A", "--user-agent", "-e", "--referer",
		"-b", "--cookie", "-c", "--cookie-jar", "-u", "--user", "-E", "--cert", "--key", "--cacert", "--capath",
		"-x", "--proxy", "-m", "--max-time", "--connect-timeout", "-w", "--write-out", "-K", "--config",
		"--resolve", "-r", "--range", "-C"},
	"wget": {"-O", "--output-document", "-o", "--output-file", "-a", "--append-output", "-P", "--directory-prefix",
		"-U", "--user-agent", "--header", "--certificate", "--private-key", "--ca-certificate", "-e", "--execute",
		"-t", "--tries", "-T", "--timeout", "--user", "--password"},
}

// parse splits the arguments into option names and operands. "-rf" gives
// -rf, -r and -f; "--out=x" gives --out and the operand-like value x is
// kept for paths; after "--" every word is an operand. For kill, a
// negative number after the first argument is a process group operand.
func (ev *event) parse() {
	if ev.parsed {
		return
	}
	ev.parsed = true
	values := valueFlags[ev.prog]
	skipNext := false
	opts := true
	for i, a := range ev.args {
		if skipNext {
			skipNext = false
			continue
		}
		isOpt := opts && len(a) > 1 && a[0] == '-'
		if isOpt && ev.prog == "kill" && i > 0 && isDigits(a[1:]) {
			isOpt = false
		}
		if opts && a == "--" {
			opts = false
			continue
		}
		name, val, eq := strings.Cut(a, "=")
		if !eq && strings.HasPrefix(a, "@") {
			val, eq = a, true
		}
		if v := strings.TrimLeft(val, "@<"); eq && v != "" {
			ev.values = append(ev.values, v)
		}
		if !isOpt {
			if len(ev.operands) == 0 {
				ev.sub = a
			}
			ev.operands = append(ev.operands, a)
			continue
		}
		ev.flags = append(ev.flags, name)
		if !eq && len(a) > 2 && a[1] != '-' {
			for _, ch := range a[1:] {
				ev.flags = append(ev.flags, "-"+string(ch))
			}
		}
		skipNext = !eq && has(values, name)
	}
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// paths returns the path subjects of ev: operands, values of key=value,
// --opt=value and @file words, and input redirections.
func (ev *event) paths() []subject {
	if ev.pathsDone {
		return ev.pathSubj
	}
	ev.pathsDone = true
	ev.parse()
	add := func(p string) {
		if s, ok := resolvePath(p, ev.cwd); ok {
			ev.pathSubj = append(ev.pathSubj, s)
		}
	}
	for _, a := range ev.operands {
		add(a)
	}
	for _, v := range ev.values {
		add(v)
	}
	for _, p := range ev.reads {
		add(p)
	}
	return ev.pathSubj
}

// written returns the files that ev writes (see Rule.Writes).
func (ev *event) written() []subject {
	if ev.writesDone {
		return ev.writeSubj
	}
	ev.writesDone = true
	add := func(p string) {
		if s, ok := resolvePath(p, ev.cwd); ok {
			ev.writeSubj = append(ev.writeSubj, s)
		}
	}
	for _, p := range ev.writes {
		add(p)
	}
	if ev.prog == "" {
		return ev.writeSubj
	}
	ev.parse()
	args, ops := ev.args, ev.operands
	switch ev.prog {
	case "tee", "truncate", "shred", "rm", "unlink", "rmdir", "sponge":
		for _, p := range ops {
			add(p)
		}
	case "cp", "mv", "install", "ln", "rsync", "scp":
		dir := optValue(args, "-t", "--target-directory")
		srcs := ops
		if dir != "" {
			srcs = without(ops, dir)
			add(dir)
		} else if len(ops) >= 2 {
			dir, srcs = ops[len(ops)-1], ops[:len(ops)-1]
			if !remote(dir) {
				add(dir)
			}
		}
		if dir != "" && !remote(dir) {
			for _, s := range srcs {
				add(strings.TrimSuffix(dir, "/") + "/" + path.Base(s))
			}
		}
		if ev.prog == "mv" {
			for _, s := range srcs {
				add(s)
			}
		}
	case "dd":
		for _, a := range args {
			if v, ok := strings.CutPrefix(a, "of="); ok {
				add(v)
			}
		}
	case "sed", "perl":
		stops := "efl"
		if ev.prog == "perl" {
			stops = "eEMmIxdD0l"
		}
		if inPlace(args, stops) {
			for _, p := range ops {
				add(p)
			}
		}
	case "curl":
		if v := optValue(args, "-o", "--output"); v != "" && v != "-" {
			add(v)
		}
	case "wget":
		if v := optValue(args, "-O", "--output-document"); v != "" && v != "-" {
			add(v)
		}
	}
	return ev.writeSubj
}

// optValue returns the value of a short or long option: -o X, -oX,
// -sSLo X, --output X, --output=X.
func optValue(args []string, short, long string) string {
	for i, a := range args {
		switch {
		case a == short || a == long:
			if i+1 < len(args) {
				return args[i+1]
			}
		case strings.HasPrefix(a, long+"="):
			return a[len(long)+1:]
		case len(a) > 2 && a[0] == '-' && a[1] != '-':
			if j := strings.IndexByte(a[1:], short[1]); j >= 0 {
				if rest := a[j+2:]; rest != "" {
					return rest
				}
				if i+1 < len(args) {
					return args[i+1]
				}
			}
		}
	}
	return ""
}

// inPlace reports whether sed or perl edits files in place (-i, -i.bak,
// -ni, -pi, --in-place).
// stops are the letters that take a value, ending a bundle.
func inPlace(args []string, stops string) bool {
	for _, a := range args {
		if a == "--" {
			return false
		}
		if strings.HasPrefix(a, "--in-place") {
			return true
		}
		if len(a) < 2 || a[0] != '-' || a[1] == '-' {
			continue
		}
		for _, ch := range a[1:] {
			if ch == 'i' {
				return true
			}
			if strings.ContainsRune(stops, ch) {
				break
			}
		}
	}
	return false
}

func without(list []string, x string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if s != x {
			out = append(out, s)
		}
	}
	return out
}

// remote reports whether an scp/rsync operand names another host.
func remote(p string) bool {
	host, _, ok := strings.Cut(p, ":")
	return ok && !strings.Contains(host, "/")
}
