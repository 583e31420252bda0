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

// escSeq follows an escape sequence, from the byte after ESC to its end:
// CSI (ESC [ parameters, then a final byte), SS3 (ESC O x) or a Meta key
// (ESC x). The zero value follows none.
type escSeq struct {
	state int
	seq   []byte // the sequence so far, after ESC
}

const (
	escNone = iota
	escStart
	escCSI
	escSS3
)

func (e *escSeq) active() bool { return e.state != escNone }
func (e *escSeq) start()       { e.state, e.seq = escStart, e.seq[:0] }
func (e *escSeq) cancel()      { e.state, e.seq = escNone, e.seq[:0] }

// feed takes the next byte of the sequence (0x20 or above: a control byte
// ends a sequence and is a key of its own; cancel it then). It reports
// whether the sequence ended, and whether it was a bracketed paste mark,
// which edits nothing.
func (e *escSeq) feed(c byte) (ended, pasteMark bool) {
	e.seq = append(e.seq, c)
	switch e.state {
	case escStart:
		switch c {
		case '[':
			e.state = escCSI
		case 'O':
			e.state = escSS3
		default:
			e.state = escNone // a Meta key: Alt-b, Alt-f, Alt-d, Alt-. ...
		}
	case escSS3:
		e.state = escNone // arrows and Home/End on some terminals
	case escCSI:
		if c >= 0x40 && c <= 0x7e {
			e.state = escNone
			s := string(e.seq)
			return true, s == pasteStart || s == pasteEnd
		}
		if len(e.seq) > 32 {
			e.state = escNone
		}
	}
	return e.state == escNone, false
}

// A Line is the line being typed. The zero value is an empty line.
type Line struct {
	buf    []byte
	unsure bool
	esc    escSeq
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
	if l.esc.active() {
		if c >= 0x20 {
			// Only the bracketed paste marks leave the line sure.
			if ended, paste := l.esc.feed(c); ended && !paste {
				l.unsure = true
			}
			return Edit
		}
		// A control byte ends the sequence (the shell may take it so too)
		// and is a key of its own.
		l.esc.cancel()
		l.unsure = true
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
		l.esc.start()
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
	l.esc.cancel()
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
