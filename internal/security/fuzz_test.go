package security

import (
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"
)

// callBound is the time one call may take on any input.
const callBound = 100 * time.Millisecond

// FuzzCommand feeds random shell text to Command (and, split on blanks, to
// Argv): no panic, a consistent assessment, and each call within callBound.
func FuzzCommand(f *testing.F) {
	for _, tc := range commandTable {
		f.Add(tc.cmd)
	}
	for _, in := range []string{
		strings.Repeat("$(", 50) + "x" + strings.Repeat(")", 50),
		strings.Repeat("a | ", 200) + "sh",
		"{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}",
		"x=$(( 1 + $(rm -rf /) ))",
		"case $x in (a) rm -rf /;; esac",
		"[[ $(rm -rf /) ]]",
		"coproc rm -rf /",
		"time rm -rf /",
		"declare -a a=(1 2); rm -rf ${a[0]}",
	} {
		f.Add(in)
	}
	a, err := New(DefaultRules())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in string) {
		as := timed(t, in, func() Assessment { return a.Command(in) })
		check(t, in, as)
		check(t, in, timed(t, in, func() Assessment { return a.CommandIn(in, "/") }))
		argv := strings.Fields(in)
		check(t, in, timed(t, in, func() Assessment { return a.Argv(argv) }))
		for _, op := range []FileOp{FileWrite, FileMove, FileRemove} {
			check(t, in, a.File(op, in))
		}
		// The same text as the code an environment runs, and as a name.
		env := map[string]string{"PROMPT_COMMAND": in, "BASH_FUNC_f%%": in, "PS1": in, "PAGER": in, in: in}
		checkEnv(t, env, timed(t, in, func() Assessment { return a.Env(env) }))
		for _, unsure := range []bool{false, true} {
			var incomplete bool
			as := timed(t, in, func() Assessment {
				var as Assessment
				as, incomplete = a.TerminalLine(in, unsure)
				return as
			})
			check(t, in, as)
			if unsure && as.Level != LevelHigh {
				t.Errorf("%.200q: an unsure terminal line is %v", in, as.Level)
			}
			if incomplete && hasRule(as, idUnparsable) {
				t.Errorf("%.200q: an unfinished terminal line is reported unparsable", in)
			}
		}
	})
}

// timed runs judge and fails if it takes longer than callBound, on the
// best of three runs when the first is slow (the machine is shared).
func timed(t *testing.T, in string, judge func() Assessment) Assessment {
	best := time.Hour
	var as Assessment
	for try := 0; try < 3; try++ {
		start := time.Now()
		as = judge()
		best = min(best, time.Since(start))
		if best < callBound*timeScale {
			return as
		}
	}
	t.Errorf("%d bytes took %v (bound %v): %.200q", len(in), best, callBound*timeScale, in)
	return as
}

func check(t *testing.T, in string, as Assessment) {
	max := LevelLow
	for _, f := range as.Findings {
		if f.RuleID == "" || f.Message == "" || !f.Level.valid() {
			t.Errorf("%.200q: bad finding %+v", in, f)
		}
		if len(f.Command) > maxText+len("…") {
			t.Errorf("%.200q: finding text of %d bytes", in, len(f.Command))
		}
		if f.Level > max {
			max = f.Level
		}
	}
	if as.Level != max {
		t.Errorf("%.200q: level %v, findings max %v", in, as.Level, max)
	}
}

// FuzzEnv feeds random environments to Env: no panic, a consistent
// assessment whose findings name variables of the environment, the same
// assessment twice, and each call within callBound.
func FuzzEnv(f *testing.F) {
	for _, tc := range envTable {
		names := make([]string, 0, len(tc.env))
		for k := range tc.env {
			names = append(names, k)
		}
		sort.Strings(names)
		var n1, v1, n2, v2 string
		if len(names) > 0 {
			n1, v1 = names[0], tc.env[names[0]]
		}
		if len(names) > 1 {
			n2, v2 = names[1], tc.env[names[1]]
		}
		f.Add(n1, v1, n2, v2)
	}
	f.Add("BASH_FUNC_x%%", "() { x|x& }", "PS4", "`rm -rf /`")
	f.Add("BASH_FUNC_%%", "()", "PS1", "$(")
	f.Add("PS0", strings.Repeat("$(", 300)+"rm -rf /", "LESSOPEN", "||")
	a, err := New(DefaultRules())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2 string) {
		env := map[string]string{n1: v1, n2: v2}
		desc := n1 + "=" + v1 + " " + n2 + "=" + v2
		as := timed(t, desc, func() Assessment { return a.Env(env) })
		checkEnv(t, env, as)
		if again := a.Env(env); !reflect.DeepEqual(again, as) {
			t.Errorf("%.200q: a second call judged %+v, the first %+v", desc, again, as)
		}
		// A variable that holds data (no rule names it, no program runs
		// it) is LOW, whatever its value.
		data := map[string]string{"DATA_" + n1: v1}
		if as := a.Env(data); as.Level != LevelLow || len(as.Findings) > 0 {
			t.Errorf("%.200q: data judged %v %+v", data, as.Level, as.Findings)
		}
	})
}

// checkEnv is check, and every finding names a variable of env.
func checkEnv(t *testing.T, env map[string]string, as Assessment) {
	t.Helper()
	check(t, "env", as)
	for _, f := range as.Findings {
		if _, ok := env[f.Env]; !ok {
			t.Errorf("%.200q: finding %+v names no variable of the environment", env, f)
		}
	}
}
