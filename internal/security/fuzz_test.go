package security

import (
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
		argv := strings.Fields(in)
		check(t, in, timed(t, in, func() Assessment { return a.Argv(argv) }))
		for _, op := range []FileOp{FileWrite, FileMove, FileRemove} {
			check(t, in, a.File(op, in))
		}
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
