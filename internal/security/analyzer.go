package security

import (
	"path"
	"strings"
	"sync"
)

// A Finding is one rule that matched one command.
type Finding struct {
	RuleID  string `json:"rule_id"`
	Level   Level  `json:"level"`
	Message string `json:"message"`
	// Command is the simple command (or file operation) that matched, as
	// text: for sh -c '...' it is the inner command. For an environment
	// rule it is NAME=VALUE.
	Command string `json:"command"`
	// Env is the environment variable the finding comes from (Env): the
	// variable an environment rule matched, or the one whose value holds
	// the command that matched. Empty for Command, Argv and File.
	Env string `json:"env,omitempty"`
}

// An Assessment is the verdict on one command: Level is the highest level
// of its findings, LOW when there are none.
type Assessment struct {
	Level    Level     `json:"level"`
	Findings []Finding `json:"findings,omitempty"`
}

// An Analyzer judges commands against a fixed set of rules. It is safe for
// concurrent use.
type Analyzer struct {
	rules  []*compiled
	byCmd  map[string][]*compiled // rules whose commands are all literal names
	others []*compiled            // rules with a glob command or none

	envByName map[string][]*compiled // environment rules whose names are all literal
	envOthers []*compiled            // environment rules with a glob name

	parsers sync.Pool // of *syntax.Parser, which are costly to make
}

// New validates rules (unique ids, a known level, a message, at least one
// matcher, well-formed patterns) and returns an analyzer for them. Errors
// name the rule's id and the field at fault. Pass DefaultRules(), possibly
// merged with user rules (MergeRules), for the built-in behaviour.
func New(rules []Rule) (*Analyzer, error) {
	if err := checkUnique(rules); err != nil {
		return nil, err
	}
	a := &Analyzer{byCmd: make(map[string][]*compiled), envByName: make(map[string][]*compiled)}
	for i, r := range rules {
		c, err := compileRule(i, r)
		if err != nil {
			return nil, err
		}
		a.rules = append(a.rules, c)
		if len(r.Env) > 0 {
			a.indexEnv(c)
			continue
		}
		literal := len(r.Command) > 0
		for _, name := range r.Command {
			if hasMeta(name) {
				literal = false
			}
		}
		if !literal {
			a.others = append(a.others, c)
			continue
		}
		for _, name := range r.Command {
			name = unescapeGlob(name)
			if l := a.byCmd[name]; len(l) == 0 || l[len(l)-1] != c {
				a.byCmd[name] = append(a.byCmd[name], c)
			}
		}
	}
	return a, nil
}

// Rules returns the analyzer's rules.
func (a *Analyzer) Rules() []Rule {
	out := make([]Rule, len(a.rules))
	for i, c := range a.rules {
		out[i] = c.Rule
	}
	return out
}

// Command judges a shell command line, as given to bash -c.
func (a *Analyzer) Command(cmd string) Assessment { return a.CommandIn(cmd, "") }

// CommandIn judges a shell command line run in directory cwd (absolute;
// "" when not known), as a persistent shell session runs its next command
// where the last one left it: rm -rf * in / is rm -rf /*.
func (a *Analyzer) CommandIn(cmd, cwd string) Assessment {
	an := a.newRun()
	st := newState()
	if path.IsAbs(cwd) {
		st.cwd = path.Clean(cwd)
	}
	an.script(strings.ReplaceAll(cmd, "\x00", ""), st, 0)
	an.release()
	return an.result()
}

// Argv judges a direct exec of argv (no shell in between); argv[0] may
// itself be a shell or a wrapper (sh -c '...', sudo ..., env ...).
func (a *Analyzer) Argv(argv []string) Assessment {
	an := a.newRun()
	if len(argv) > 0 {
		var b strings.Builder
		for i, w := range argv {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(quoteWord(w))
		}
		an.simple(call{argv: argv, text: b.String()}, newState(), ctx{}, 0)
	}
	an.release()
	return an.result()
}

// FileOp is an operation of the files API.
type FileOp int

// The file operations.
const (
	FileWrite FileOp = iota
	FileMove
	FileRemove
)

// String returns "write", "move" or "remove".
func (op FileOp) String() string {
	switch op {
	case FileMove:
		return "move"
	case FileRemove:
		return "remove"
	}
	return "write"
}

// File judges a write, move or removal of path through the files API
// (not through a shell). A write or move is judged as a write of path; a
// removal as a write of path and as rm -r -f path. For a move, call File
// for the source and for the destination.
func (a *Analyzer) File(op FileOp, path string) Assessment {
	an := a.newRun()
	text := op.String() + " " + path
	an.match(&event{writes: []string{path}, text: text})
	if op == FileRemove {
		an.match(&event{prog: "rm", args: []string{"-r", "-f", "--", path}, text: text})
	}
	return an.result()
}

// quoteWord quotes w for display when it holds shell metacharacters.
func quoteWord(w string) string {
	if w != "" && !strings.ContainsAny(w, " \t\n'\"\\$`;&|<>()*?[]{}~#!") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}
