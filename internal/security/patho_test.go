package security

import (
	"strings"
	"testing"
	"time"
)

// pathological returns inputs built to be slow or deep: nesting, long
// pipelines, huge brace expansions, long words.
func pathological() map[string]string {
	n := 10000
	return map[string]string{
		"nested-cmdsubst": strings.Repeat("$(", 3000) + "rm -rf /" + strings.Repeat(")", 3000),
		"nested-backtick": strings.Repeat("echo `", 1) + strings.Repeat("(", 5000) + "x" + strings.Repeat(")", 5000) + "`",
		"nested-subshell": strings.Repeat("(", 5000) + "rm -rf /" + strings.Repeat(")", 5000),
		"nested-group":    strings.Repeat("{ ", 5000) + "rm -rf /" + strings.Repeat("; }", 5000),
		"pipes-10k":       strings.Repeat("cat | ", n) + "sh",
		"ands-10k":        strings.Repeat("true && ", n) + "rm -rf /",
		"semis-10k":       strings.Repeat("x=1; ", n) + "rm -rf $x",
		"braces":          "echo " + strings.Repeat("{a,b,c,d}", 200),
		"brace-seq":       "echo {1..99999999}{1..99999999}",
		"long-word":       "rm -rf /" + strings.Repeat("a", 60000),
		"long-glob":       "chmod " + strings.Repeat("*+", 30000) + "s",
		"nested-param":    "echo " + strings.Repeat("${a:-", 3000) + "x" + strings.Repeat("}", 3000),
		"sh-c-nest":       nestShC(9),
		"eval-chain":      strings.Repeat("eval ", 5000) + "rm -rf /",
		"sudo-chain":      strings.Repeat("sudo env nice ", 3000) + "rm -rf /",
		"for-nest":        strings.Repeat("for a in 1 2 3 4 5 6 7 8; do ", 200) + "rm -rf $a" + strings.Repeat("; done", 200),
		"func-bombs":      strings.Repeat("f(){ f|f& };", 3000),
		"heredocs":        strings.Repeat("cat <<E | sh\nrm -rf /\nE\n", 2000),
		"many-substs":     strings.Repeat("echo $(a) $(b) <(c) ", 3000),
		"if-nest":         strings.Repeat("if a; then ", 3000) + "b" + strings.Repeat("; fi", 3000),
		"unparsable":      strings.Repeat("echo 'x; ", 6000),
		"too-long":        strings.Repeat("ls; ", 20000),
		"case-nest":       strings.Repeat("case x in y) ", 2000) + "z" + strings.Repeat(";; esac", 2000),
		"xargs-find":      strings.Repeat("find / | xargs ", 3000) + "rm -rf",
		// Too long: word-scanned in chunks up to 1 MiB.
		"long-assigns": strings.Repeat("x=1\n", 1<<18) + "rm -rf /",
		"long-words":   strings.Repeat("rm ", 1<<20),
		"long-pipes":   strings.Repeat("a|", 2<<20),
		"long-quotes":  strings.Repeat(`"'\`, 1<<20),
		"long-deep":    strings.Repeat("eval ", maxDepth+2) + strings.Repeat("sudo -u x ", 1<<17),
	}
}

func nestShC(depth int) string {
	s := "rm -rf /"
	for i := 0; i < depth; i++ {
		s = "sh -c " + quoteWord(s)
	}
	return s
}

func TestPathologicalBounded(t *testing.T) {
	a, err := New(DefaultRules())
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range pathological() {
		t.Run(name, func(t *testing.T) {
			// The best of three runs: the machine is shared, and the bound
			// is about the analyzer's work, not the scheduler's.
			var as Assessment
			d := time.Hour
			for range 3 {
				start := time.Now()
				as = a.Command(in)
				d = min(d, time.Since(start))
			}
			t.Logf("%d bytes: %v in %v (%d findings)", len(in), as.Level, d, len(as.Findings))
			if d > callBound*timeScale {
				t.Errorf("took %v, want < %v", d, callBound*timeScale)
			}
		})
	}
}
