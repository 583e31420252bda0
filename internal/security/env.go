package security

import (
	"sort"
	"strings"
)

// How a variable's value is read. Which variables are risky, and how much,
// is rules (Rule.Env); which ones hold code that a shell or a program runs
// is knowledge of bash and of those programs, kept here as wrappers.go
// keeps what sudo or xargs run.
type envKind int

const (
	envData     envKind = iota // a value: judged by the environment rules only
	envCommand                 // a shell command, run by bash or a program
	envFunction                // BASH_FUNC_NAME%%: a function bash defines at start
	envPrompt                  // a prompt string, whose $( ) and ` ` run at each prompt
)

// commandVars are the variables whose value is a command line, run through
// a shell: at every prompt of an interactive bash (PROMPT_COMMAND), or by
// git, ssh, sudo, man, less and programs that open an editor or a pager.
var commandVars = map[string]bool{
	"PROMPT_COMMAND": true, // bash

	"GIT_SSH_COMMAND": true, "GIT_SSH": true, "GIT_PROXY_COMMAND": true, "GIT_EXTERNAL_DIFF": true,
	"GIT_PAGER": true, "GIT_EDITOR": true, "GIT_SEQUENCE_EDITOR": true, "GIT_ASKPASS": true,
	"SSH_ASKPASS": true, "SUDO_ASKPASS": true,
	"PAGER": true, "MANPAGER": true, "SYSTEMD_PAGER": true, "EDITOR": true, "VISUAL": true,
	"LESSOPEN": true, "LESSCLOSE": true,
}

// envKindOf says how the value of variable name is read; for a function,
// fn is the function's name.
func envKindOf(name string) (kind envKind, fn string) {
	switch {
	case commandVars[name]:
		return envCommand, ""
	case name == "PS0" || name == "PS1" || name == "PS2" || name == "PS4":
		return envPrompt, ""
	case strings.HasPrefix(name, "BASH_FUNC_"):
		// BASH_FUNC_ls%% (bash 4.3.27 and later), BASH_FUNC_ls() (the
		// patched 4.x of the shellshock fixes).
		fn = strings.TrimPrefix(name, "BASH_FUNC_")
		if f, ok := strings.CutSuffix(fn, "%%"); ok {
			return envFunction, f
		}
		if f, ok := strings.CutSuffix(fn, "()"); ok {
			return envFunction, f
		}
	}
	return envData, ""
}

// Env judges environment variables set for a command, a session, a
// terminal or a whole sandbox: each against the environment rules
// (Rule.Env: LD_PRELOAD, BASH_ENV...), and, for the variables whose value
// runs as code, that code as Command would judge it, its findings keeping
// their levels: PROMPT_COMMAND and the command variables of git, ssh,
// sudo, pagers and editors (GIT_SSH_COMMAND, PAGER, EDITOR...), exported
// functions (BASH_FUNC_NAME%%=() { BODY; }: the body), and the command
// substitutions of prompts (PS0, PS1, PS2, PS4). Any other value is data:
// FOO='rm -rf /' is LOW. Variables are judged in the order of their names;
// each finding names its variable (Finding.Env).
func (a *Analyzer) Env(env map[string]string) Assessment {
	names := make([]string, 0, len(env))
	for name := range env {
		names = append(names, name)
	}
	sort.Strings(names)
	r := a.newRun()
	for _, name := range names {
		r.env = name
		// Each variable counts as one command against the bound.
		if !r.spend(name) {
			break
		}
		value := strings.ReplaceAll(env[name], "\x00", "")
		r.matchEnv(name, value)
		switch kind, fn := envKindOf(name); kind {
		case envCommand:
			if name == "LESSOPEN" || name == "LESSCLOSE" {
				// "|lesspipe %s", "||lesspipe %s": the pipes say how less reads the output.
				value = strings.TrimLeft(strings.TrimSpace(value), "|")
			}
			r.script(value, newState(), 1)
		case envFunction:
			// bash defines NAME () BODY when the value starts with "() {".
			body := strings.TrimSpace(value)
			body = strings.TrimSpace(strings.TrimPrefix(body, "()"))
			if validVarName(fn) {
				body = fn + " () " + body // so that a fork bomb is seen as one
			}
			r.script(body, newState(), 1)
		case envPrompt:
			r.prompt(value)
		}
	}
	r.env = ""
	r.release()
	return r.result()
}

// indexEnv adds environment rule c to the analyzer's indexes.
func (a *Analyzer) indexEnv(c *compiled) {
	for _, name := range c.Env {
		if hasMeta(name) {
			a.envOthers = append(a.envOthers, c)
			return
		}
	}
	for _, name := range c.Env {
		name = unescapeGlob(name)
		if l := a.envByName[name]; len(l) == 0 || l[len(l)-1] != c {
			a.envByName[name] = append(a.envByName[name], c)
		}
	}
}

// matchEnv records a finding for every environment rule that the variable
// name=value matches.
func (r *run) matchEnv(name, value string) {
	var text string
	for _, list := range [][]*compiled{r.a.envByName[name], r.a.envOthers} {
		for _, c := range list {
			if !anyGlob(c.Env, name) || len(c.Value) > 0 && !anyGlob(c.Value, value) {
				continue
			}
			if text == "" {
				text = envText(name, value)
			}
			r.add(c.ID, c.Level, c.Message, text)
		}
	}
}

// envText is name=value for a finding, the value quoted when it needs it
// and cut (the finding's text is cut at maxText anyway).
func envText(name, value string) string {
	if len(value) > maxText {
		cut := maxText
		for cut > 0 && value[cut]&0xC0 == 0x80 {
			cut--
		}
		value = value[:cut]
	}
	return name + "=" + quoteWord(value)
}

// prompt judges the commands that a prompt string runs: bash expands PS0,
// PS1, PS2 and PS4 as if in double quotes each time it shows them, so
// their $( ) and ` ` run.
func (r *run) prompt(value string) {
	if !strings.ContainsAny(value, "$`") || !r.admit(value, 1) {
		return
	}
	w, err := r.parser.Document(strings.NewReader(value))
	if err != nil {
		r.internal(idUnparsable, msgUnparsable+err.Error(), value)
		r.scan(value, 1, false)
		return
	}
	r.substs(&frame{src: value, depth: 1}, w, newState(), ctx{}, nil)
}
