// Package termline follows what is typed into a terminal, key by key, to
// know the line a shell will run when Enter is pressed.
//
// It models the edits every line editor agrees on (printable text,
// backspace, Ctrl-U, Ctrl-W, Ctrl-C) and nothing more. A key it cannot
// follow — Tab completion, history, cursor movement, any other control key
// or escape sequence — marks the line Unsure: the text it holds may then
// differ from what the shell has, and a caller judging the line must not
// trust it.
package termline

import (
	"unicode/utf8"
)

// MaxLine bounds the bytes kept of one line; past it the line is Unsure
// and further text is dropped (a shell line that long is a paste, not
// typing).
const MaxLine = 64 << 10

// Keys with a meaning here.
const (
	keyCtrlC     = 0x03
	keyCtrlD     = 0x04
	keyBackspace = 0x08
	keyTab       = 0x09
	keyLF        = 0x0a
	keyCtrlL     = 0x0c
	keyCR        = 0x0d
	keyCtrlU     = 0x15
	keyCtrlW     = 0x17
	keyEsc       = 0x1b
	keyDel       = 0x7f
)

// Bracketed paste marks around pasted text (xterm); they do not edit.
const (
	pasteStart = "[200~"
	pasteEnd   = "[201~"
)

// escape states
const (
	escNone = iota
	escStart
	escCSI // ESC [ params... final
	escSS3 // ESC O x
)

// A Line is the line being typed. The zero value is an empty line.
type Line struct {
	buf    []byte
	unsure bool
	esc    int
	seq    []byte // the escape sequence so far, after ESC
}

// Key is what a byte did to the line.
type Key int

const (
	// Edit: the byte changed (or did not change) the line being typed.
	Edit Key = iota
	// Enter: the byte submits the line (CR or LF); Text and Unsure say
	// what it is, and Reset starts the next one.
	Enter
	// Cancel: Ctrl-C dropped the line, or Ctrl-D on an empty line ended
	// the input; the shell abandons what it was reading.
	Cancel
)

// Feed takes one typed byte and says what it did.
func (l *Line) Feed(c byte) Key {
	if l.esc != escNone {
		if c >= 0x20 {
			l.escape(c)
			return Edit
		}
		// A control byte ends the sequence (the shell may take it so too)
		// and is a key of its own.
		l.esc, l.unsure = escNone, true
	}
	switch {
	case c == keyCR || c == keyLF:
		return Enter
	case c == keyCtrlC:
		l.Reset()
		return Cancel
	case c == keyCtrlD:
		if len(l.buf) == 0 && !l.unsure {
			return Cancel
		}
		// Deletes the character under the cursor: at the end, where a
		// sure line has it, nothing.
	case c == keyCtrlU:
		// Erases back to the start; text after the cursor (only on an
		// unsure line) stays, so an unsure line stays unsure.
		l.buf = l.buf[:0]
	case c == keyBackspace || c == keyDel:
		l.buf = dropRune(l.buf)
	case c == keyCtrlW:
		l.buf = dropWord(l.buf)
	case c == keyCtrlL:
		// Redraws the screen; the line is kept.
	case c == keyEsc:
		l.esc, l.seq = escStart, l.seq[:0]
	case c < 0x20:
		// Tab completion, history (Ctrl-P, Ctrl-R), cursor moves (Ctrl-A,
		// Ctrl-B), kill and yank (Ctrl-K, Ctrl-Y), quoted insert (Ctrl-V)...
		l.unsure = true
	default:
		if len(l.buf) >= MaxLine {
			l.unsure = true
			return Edit
		}
		l.buf = append(l.buf, c)
	}
	return Edit
}

// escape follows an escape sequence: CSI (ESC [ ... final byte), SS3
// (ESC O x) or a two-byte Meta key. Only the bracketed paste marks leave
// the line sure.
func (l *Line) escape(c byte) {
	l.seq = append(l.seq, c)
	switch l.esc {
	case escStart:
		switch c {
		case '[':
			l.esc = escCSI
		case 'O':
			l.esc = escSS3
		default:
			// Meta-key: Alt-b, Alt-f, Alt-d, Alt-. and friends edit.
			l.esc, l.unsure = escNone, true
		}
	case escSS3:
		l.esc, l.unsure = escNone, true // arrows and Home/End on some terminals
	case escCSI:
		if c >= 0x40 && c <= 0x7e {
			if s := string(l.seq); s != pasteStart && s != pasteEnd {
				l.unsure = true
			}
			l.esc = escNone
		} else if len(l.seq) > 32 {
			l.esc, l.unsure = escNone, true
		}
	}
}

// Text is the line as followed so far.
func (l *Line) Text() string { return string(l.buf) }

// Unsure reports whether a key berth cannot follow edited the line, so
// Text may not be what the shell has.
func (l *Line) Unsure() bool { return l.unsure }

// Empty reports whether nothing was typed (or all of it erased) and no
// key made the line unsure.
func (l *Line) Empty() bool { return len(l.buf) == 0 && !l.unsure }

// Reset starts a new line (after Enter, or when the shell dropped the
// line).
func (l *Line) Reset() {
	l.buf, l.unsure = l.buf[:0], false
	l.esc, l.seq = escNone, l.seq[:0]
}

// dropRune erases the last character of b.
func dropRune(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	_, n := utf8.DecodeLastRune(b)
	return b[:len(b)-n]
}

// dropWord erases the last word of b and the blanks after it.
func dropWord(b []byte) []byte {
	i := len(b)
	for i > 0 && (b[i-1] == ' ' || b[i-1] == '\t') {
		i--
	}
	for i > 0 && b[i-1] != ' ' && b[i-1] != '\t' {
		i--
	}
	return b[:i]
}
