package security

import "testing"

func TestTerminalLine(t *testing.T) {
	a, err := New(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		text       string
		unsure     bool
		level      Level
		incomplete bool
		rule       string
	}{
		{"ls -la", false, LevelLow, false, ""},
		{"rm -rf /", false, LevelHigh, false, "rm-root"},
		{"echo 'unfinished", false, LevelLow, true, ""},
		{"rm -rf / \\", false, LevelHigh, true, "rm-root"},
		{"cat <<EOF", false, LevelLow, true, ""},
		{"cat <<EOF\nhello\nEOF", false, LevelLow, false, ""},
		{"echo 'a\nb'", false, LevelLow, false, ""},
		{"ls |", false, LevelLow, true, ""},
		{"ls", true, LevelHigh, false, idTermEdit},
		{"if true; then", false, LevelLow, true, ""},
		{"echo )", false, LevelMedium, false, idUnparsable},
	} {
		as, inc := a.TerminalLine(tc.text, tc.unsure)
		if as.Level != tc.level || inc != tc.incomplete {
			t.Errorf("%q unsure=%v: level %s incomplete %v, want %s %v (%+v)", tc.text, tc.unsure, as.Level, inc, tc.level, tc.incomplete, as.Findings)
			continue
		}
		if tc.rule != "" && !hasRule(as, tc.rule) {
			t.Errorf("%q: findings %+v, want rule %s", tc.text, as.Findings, tc.rule)
		}
		if inc && hasRule(as, idUnparsable) {
			t.Errorf("%q: an unfinished command is reported unparsable", tc.text)
		}
	}
}
