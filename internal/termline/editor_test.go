package termline

import (
	"strings"
	"testing"
)

// edit types keys into an Editor and returns what the relay would send
// the shell: each submitted line followed by "⏎", passed keys as they are.
func edit(keys string) string {
	var e Editor
	var out strings.Builder
	for i := 0; i < len(keys); i++ {
		switch e.Feed(keys[i]) {
		case Submit:
			out.WriteString(e.Text() + "⏎")
			e.Reset()
		case Pass:
			out.WriteByte(keys[i])
		}
	}
	return out.String()
}

func TestEditor(t *testing.T) {
	for _, tc := range []struct{ name, keys, want string }{
		{"plain", "ls -la\r", "ls -la⏎"},
		{"line feed", "ls\n", "ls⏎"},
		{"backspace", "rm -rf /x\x7f\r", "rm -rf /⏎"},
		{"ctrl-h", "lsx\x08\r", "ls⏎"},
		{"ctrl-u", "rm -rf /\x15ls\r", "ls⏎"},
		{"ctrl-w", "rm -rf / \x17./b\r", "rm -rf ./b⏎"},
		// What the shell could edit or run a line with never reaches it.
		{"tab dropped", "ls /ho\t\r", "ls /ho⏎"},
		{"ctrl-o dropped", "touch x\x0f", ""},
		{"arrows dropped", "\x1b[Als\x1b[D\r", "ls⏎"},
		{"ss3 dropped", "l\x1bOAs\r", "ls⏎"},
		{"meta dropped", "ls\x1bb\r", "ls⏎"},
		{"escape ended by enter", "touch x #\x1b[\r\r", "touch x #⏎⏎"},
		{"paste marks dropped", "\x1b[200~rm -rf /\x1b[201~\r", "rm -rf /⏎"},
		{"paste with a cr", "\x1b[200~a\rb\x1b[201~\r", "a⏎b⏎"},
		{"ctrl-c passes, drops the line", "rm -rf /\x03ls\r", "\x03ls⏎"},
		{"ctrl-d on empty passes", "\x04", "\x04"},
		{"ctrl-d mid-line dropped", "ls\x04\r", "ls⏎"},
		{"ctrl-v dropped", "\x16\x0d", "⏎"},
		{"utf-8", "echo é\x7fe\r", "echo e⏎"},
	} {
		if got := edit(tc.keys); got != tc.want {
			t.Errorf("%s: keys %q sent %q, want %q", tc.name, tc.keys, got, tc.want)
		}
	}
}

func TestEditorOverflow(t *testing.T) {
	var e Editor
	for range MaxLine + 5 {
		e.Feed('a')
	}
	if !e.Overflow() || len(e.Text()) != MaxLine {
		t.Fatalf("overflow %v, %d bytes", e.Overflow(), len(e.Text()))
	}
	e.Feed(keyCtrlU)
	if e.Overflow() || e.Text() != "" {
		t.Fatal("ctrl-u keeps an overflow")
	}
}

// FuzzEditor: whatever is typed, a submitted line holds only printable
// text (no byte below 0x20, no DEL), and only Ctrl-C or Ctrl-D pass.
func FuzzEditor(f *testing.F) {
	for _, s := range []string{"ls\r", "\x1b[200~a\rb\x1b[201~\r", "\x1b[\r", "a\x0fb\x16\r", "é\x7f\x03\x04"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, keys string) {
		var e Editor
		for i := 0; i < len(keys); i++ {
			switch e.Feed(keys[i]) {
			case Submit:
				for _, c := range []byte(e.Text()) {
					if c < 0x20 || c == 0x7f {
						t.Fatalf("keys %q: line %q holds control byte %#x", keys, e.Text(), c)
					}
				}
				e.Reset()
			case Pass:
				if keys[i] != keyCtrlC && keys[i] != keyCtrlD {
					t.Fatalf("keys %q: byte %#x passed", keys, keys[i])
				}
			}
			if len(e.Text()) > MaxLine {
				t.Fatalf("line of %d bytes", len(e.Text()))
			}
		}
	})
}
