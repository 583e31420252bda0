package termline

import (
	"strings"
	"testing"
)

// feed types keys and returns the lines submitted by Enter, each with its
// Unsure flag, and the line still being typed.
func feed(keys string) (lines []string, unsure []bool, cancels int, rest *Line) {
	var l Line
	for i := 0; i < len(keys); i++ {
		switch l.Feed(keys[i]) {
		case Enter:
			lines = append(lines, l.Text())
			unsure = append(unsure, l.Unsure())
			l.Reset()
		case Cancel:
			cancels++
		}
	}
	return lines, unsure, cancels, &l
}

func TestFeed(t *testing.T) {
	for _, tc := range []struct {
		name, keys string
		want       string
		unsure     bool
	}{
		{"plain", "ls -la\r", "ls -la", false},
		{"linefeed", "ls\n", "ls", false},
		{"backspace", "rm -rf /tmpx\x7f\r", "rm -rf /tmp", false},
		{"ctrl-h", "lsx\x08\r", "ls", false},
		{"backspace utf-8", "echo é\x7f\r", "echo ", false},
		{"backspace past start", "\x7f\x7fls\r", "ls", false},
		{"ctrl-u", "rm -rf /\x15ls\r", "ls", false},
		{"ctrl-w", "rm -rf / \x17./build\r", "rm -rf ./build", false},
		{"ctrl-w twice", "a b c\x17\x17x\r", "a x", false},
		{"ctrl-l keeps", "ls\x0c -l\r", "ls -l", false},
		{"bracketed paste", "\x1b[200~rm -rf /\x1b[201~\r", "rm -rf /", false},
		{"tab completion", "rm -rf /ho\t\r", "rm -rf /ho", true},
		{"history up", "\x1b[A\r", "", true},
		{"ss3 arrow", "ls\x1bOD\r", "ls", true},
		{"meta b", "ls\x1bb\r", "ls", true},
		{"ctrl-a", "ls\x01# \r", "ls# ", true},
		{"ctrl-r", "\x12rm\r", "rm", true},
		{"ctrl-u keeps unsure", "ls\x1b[D\x15\r", "", true},
		{"ctrl-d mid-line", "ls\x04\r", "ls", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines, unsure, _, _ := feed(tc.keys)
			if len(lines) != 1 || lines[0] != tc.want || unsure[0] != tc.unsure {
				t.Fatalf("keys %q: got lines %q unsure %v, want %q unsure %v", tc.keys, lines, unsure, tc.want, tc.unsure)
			}
		})
	}
}

func TestEnterResets(t *testing.T) {
	lines, unsure, _, rest := feed("ls\t\rpwd\r\necho")
	if strings.Join(lines, "|") != "ls|pwd|" || !unsure[0] || unsure[1] || unsure[2] {
		t.Fatalf("got %q %v", lines, unsure)
	}
	if rest.Text() != "echo" || rest.Unsure() || rest.Empty() {
		t.Fatalf("rest %q unsure %v", rest.Text(), rest.Unsure())
	}
}

func TestCancel(t *testing.T) {
	lines, _, cancels, rest := feed("rm -rf /\x03ls\r\x04")
	if len(lines) != 1 || lines[0] != "ls" || cancels != 2 || !rest.Empty() {
		t.Fatalf("got %q, %d cancels", lines, cancels)
	}
	// Ctrl-D on a line with text is not an end of input.
	if _, _, cancels, _ := feed("ls\x04"); cancels != 0 {
		t.Fatalf("ctrl-d mid-line cancelled")
	}
}

func TestLongEscapeEnds(t *testing.T) {
	lines, unsure, _, _ := feed("\x1b[" + strings.Repeat("1", 40) + "ls\r")
	if len(lines) != 1 || !unsure[0] {
		t.Fatalf("got %q %v", lines, unsure)
	}
}

func TestMaxLine(t *testing.T) {
	lines, unsure, _, _ := feed(strings.Repeat("a", MaxLine+10) + "\r")
	if len(lines) != 1 || len(lines[0]) != MaxLine || !unsure[0] {
		t.Fatalf("got a line of %d bytes, unsure %v", len(lines[0]), unsure)
	}
}

// FuzzFeed: any keys, no panic; a line never outgrows MaxLine; a line
// whose keys were all printable is sure and equals them.
func FuzzFeed(f *testing.F) {
	for _, s := range []string{"ls\r", "\x1b[200~a\nb\x1b[201~\r", "\x1b[A\x15\x17\x7f", "é\x7f\x03\x04"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, keys string) {
		var l Line
		printable := true
		var typed []byte
		for i := 0; i < len(keys); i++ {
			c := keys[i]
			if l.Feed(c) == Enter {
				if printable && len(typed) <= MaxLine && (l.Unsure() || l.Text() != string(typed)) {
					t.Fatalf("keys %q: line %q unsure %v, want %q sure", keys, l.Text(), l.Unsure(), typed)
				}
				l.Reset()
				printable, typed = true, typed[:0]
				continue
			}
			if c < 0x20 || c == 0x7f {
				printable = false
			}
			typed = append(typed, c)
			if len(l.Text()) > MaxLine {
				t.Fatalf("line of %d bytes", len(l.Text()))
			}
		}
	})
}
