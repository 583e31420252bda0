package security

import (
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// msgTermEdit is the finding of a terminal line edited with keys berth
// cannot follow.
const msgTermEdit = "The line was edited with keys berth cannot follow (Tab completion, history, cursor movement), so what the shell will run is not known; type the command out, or run it through the exec API."

// TerminalRules are rules for lines typed into a terminal, on top of the
// rules for commands: what changes how the terminal or the shell reads the
// keys that follow, so that berth could no longer tell what a later line
// is. (Each exec and session command runs without a terminal: there these
// programs change nothing that matters.)
func TerminalRules() []Rule {
	return []Rule{{
		ID: "terminal-settings", Level: LevelHigh, Command: []string{"stty", "bind"},
		Message: "Changes how the terminal or the shell reads keys (erase and kill characters, key bindings), so berth could no longer tell what a later line typed into the terminal is.",
	}}
}

// TerminalLine judges a line typed into an interactive shell when Enter is
// pressed. text is everything typed since the shell last started reading
// a command (earlier lines of an unfinished one included); unsure says a
// key berth cannot follow edited it (internal/termline), which is itself
// a HIGH finding.
//
// incomplete reports that text does not finish a command yet (an open
// quote, a trailing backslash or pipe, a here-document), so the shell
// will read another line before it runs anything. Such text is still
// judged, word by word, without the "unparsable" finding.
func (a *Analyzer) TerminalLine(text string, unsure bool) (as Assessment, incomplete bool) {
	if len(text) <= maxInput {
		p, ok := a.parsers.Get().(*syntax.Parser)
		if !ok {
			p = syntax.NewParser(syntax.Variant(syntax.LangBash))
		}
		_, err := p.Parse(strings.NewReader(text), "")
		a.parsers.Put(p)
		// The parser takes an unclosed here-document as an error and a
		// trailing backslash as a literal; bash reads on for both.
		incomplete = syntax.IsIncomplete(err) ||
			err != nil && strings.Contains(err.Error(), "unclosed here-document") ||
			err == nil && trailingBackslash(text)
	}
	as = a.Command(text)
	if incomplete {
		kept := as.Findings[:0]
		as.Level = LevelLow
		for _, f := range as.Findings {
			if f.RuleID == idUnparsable {
				continue
			}
			kept = append(kept, f)
			as.Level = max(as.Level, f.Level)
		}
		as.Findings = kept
	}
	if unsure {
		r := a.newRun()
		r.add(idTermEdit, LevelHigh, msgTermEdit, text)
		as.Findings = append(as.Findings, r.findings...)
		as.Level = LevelHigh
	}
	return as, incomplete
}

// trailingBackslash reports whether text ends in an odd number of
// backslashes: an escaped newline follows, a line continuation.
func trailingBackslash(text string) bool {
	n := len(text) - len(strings.TrimRight(text, "\\"))
	return n%2 == 1
}
