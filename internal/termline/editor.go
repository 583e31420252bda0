package termline

// An Editor is the line editor of a terminal whose shell must not see a
// line before it is judged: it keeps what is typed, and a relay sends the
// line to the shell only once Enter is pressed and the line is allowed.
// So the shell receives plain text and Enter, nothing it could edit or run
// the line with on its own: Backspace, Ctrl-U and Ctrl-W edit the line
// here; Ctrl-C and Ctrl-D (on an empty line) pass; escape sequences (arrow
// keys, bracketed paste marks), Tab and every other control key are
// dropped. The zero value is an empty line.
type Editor struct {
	buf      []byte
	overflow bool
	esc      escSeq
}

// Action is what a typed byte asks of the relay.
type Action int

const (
	// Keep: the byte edited the line, or was dropped; send nothing.
	Keep Action = iota
	// Submit: Enter (CR or LF). Judge Text; send it and the Enter key if
	// it is allowed; then Reset.
	Submit
	// Pass: Ctrl-C, or Ctrl-D on an empty line. The line is dropped; send
	// the key itself.
	Pass
)

// Feed takes one typed byte.
func (e *Editor) Feed(c byte) Action {
	if e.esc.active() {
		if c >= 0x20 {
			e.esc.feed(c) // dropped, whatever it is
			return Keep
		}
		e.esc.cancel() // a control byte ends the sequence and is a key of its own
	}
	switch {
	case c == keyCR || c == keyLF:
		return Submit
	case c == keyCtrlC:
		e.Reset()
		return Pass
	case c == keyCtrlD:
		if len(e.buf) == 0 && !e.overflow {
			return Pass
		}
	case c == keyCtrlU:
		e.buf, e.overflow = e.buf[:0], false
	case c == keyBackspace || c == keyDel:
		e.buf = dropRune(e.buf)
	case c == keyCtrlW:
		e.buf = dropWord(e.buf)
	case c == keyEsc:
		e.esc.start()
	case c < 0x20:
		// Tab, Ctrl-O, Ctrl-R, Ctrl-V...: dropped.
	default:
		if len(e.buf) >= MaxLine {
			e.overflow = true
			return Keep
		}
		e.buf = append(e.buf, c)
	}
	return Keep
}

// Text is the line typed so far.
func (e *Editor) Text() string { return string(e.buf) }

// Overflow reports whether the line outgrew MaxLine: text was dropped, so
// Text is not what was typed.
func (e *Editor) Overflow() bool { return e.overflow }

// Reset starts a new line.
func (e *Editor) Reset() {
	e.buf, e.overflow = e.buf[:0], false
	e.esc.cancel()
}
