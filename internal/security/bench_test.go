package security

import "testing"

// typicalCommand is the shape of most agent commands.
const typicalCommand = "cd /workspace/repo && python -m pytest -x tests/ 2>&1 | tail -50"

func BenchmarkCommandTypical(b *testing.B) {
	a, err := New(DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if as := a.Command(typicalCommand); as.Level != LevelLow {
			b.Fatalf("typical command judged %v: %+v", as.Level, as.Findings)
		}
	}
}

func BenchmarkCommandDangerous(b *testing.B) {
	a, err := New(DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	const cmd = `X=/; sudo sh -c "cd $X && rm -rf *" | tee /tmp/log`
	b.ReportAllocs()
	for b.Loop() {
		if as := a.Command(cmd); as.Level != LevelHigh {
			b.Fatalf("judged %v", as.Level)
		}
	}
}

// A line typed into a terminal is parsed once more, to know whether the
// shell reads on.
func BenchmarkTerminalLine(b *testing.B) {
	a, err := New(DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if as, incomplete := a.TerminalLine(typicalCommand, false); as.Level != LevelLow || incomplete {
			b.Fatalf("typical line judged %v (incomplete %v)", as.Level, incomplete)
		}
	}
}

// An exec's environment is judged besides its command.
func BenchmarkEnvTypical(b *testing.B) {
	a, err := New(DefaultRules())
	if err != nil {
		b.Fatal(err)
	}
	env := map[string]string{"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/home/user", "LANG": "C.UTF-8",
		"TERM": "xterm-256color", "CI": "true", "NODE_OPTIONS": "--max-old-space-size=4096", "GIT_PAGER": "cat"}
	b.ReportAllocs()
	for b.Loop() {
		if as := a.Env(env); as.Level != LevelLow {
			b.Fatalf("typical environment judged %v: %+v", as.Level, as.Findings)
		}
	}
}
