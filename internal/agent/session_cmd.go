package agent

import (
	"bytes"
	"os"
	"strconv"
	"sync"
	"time"
)

// sessionCmd is one command run in a session. Its output is read all the
// time, whether or not a call streams it, into a buffer that calls take
// from; so the command never blocks on its output and a later call gets
// what an earlier one did not.
type sessionCmd struct {
	text    string
	started time.Time
	token   string // its status line starts with this; random, never shown to the sandbox
	maxOut  int64

	mu        sync.Mutex
	pending   []chunk
	accepted  int64 // bytes kept, delivered or pending; at most maxOut
	dropped   int64 // bytes past maxOut
	late      int64 // bytes written after the command ended (background jobs), dropped
	finished  bool
	exit      sessionExit
	ended     time.Time
	delivered bool          // a call sent the final event
	changed   chan struct{} // closed and replaced on every change
	begun     chan struct{} // closed once the shell has begun the command
	begunOnce sync.Once
}

// sessionExit is how a command ended.
type sessionExit struct {
	code        int
	signal      string
	shellExited bool // the command ended the shell: code and signal are the shell's
}

func newSessionCmd(text string, maxOut int64) *sessionCmd {
	return &sessionCmd{
		text:    text,
		started: time.Now(),
		token:   randomToken(false),
		maxOut:  maxOut,
		changed: make(chan struct{}),
		begun:   make(chan struct{}),
	}
}

func (c *sessionCmd) markBegun() { c.begunOnce.Do(func() { close(c.begun) }) }

// awaitBegun waits until the shell has begun the command (or it has
// ended), up to timeout.
func (c *sessionCmd) awaitBegun(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		_, done, changed := c.peek()
		if done {
			return true
		}
		select {
		case <-c.begun:
			return true
		case <-changed:
		case <-t.C:
			return false
		}
	}
}

// add keeps output, up to the cap; after the end it is dropped.
func (c *sessionCmd) add(ch chunk) {
	if len(ch.data) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.finished {
		c.late += int64(len(ch.data))
		return
	}
	if room := c.maxOut - c.accepted; int64(len(ch.data)) > room {
		c.dropped += int64(len(ch.data)) - room
		ch.data = ch.data[:room]
	}
	if len(ch.data) == 0 {
		return
	}
	c.accepted += int64(len(ch.data))
	c.pending = append(c.pending, ch)
	c.notifyLocked()
}

func (c *sessionCmd) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// finish records the end; all of the output is in by then.
func (c *sessionCmd) finish(ex sessionExit) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.finished, c.exit, c.ended = true, ex, time.Now()
	c.notifyLocked()
}

// take returns the pending output, whether the command has finished (with
// nothing pending, that means the stream can end), and a channel closed on
// the next change.
func (c *sessionCmd) take() ([]chunk, bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := c.pending
	c.pending = nil
	return out, c.finished, c.changed
}

func (c *sessionCmd) isFinished() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.finished
}

// wait returns once the command has finished, or false at timeout.
func (c *sessionCmd) wait(timeout time.Duration) bool {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		_, done, changed := c.peek()
		if done {
			return true
		}
		select {
		case <-changed:
		case <-t.C:
			return false
		}
	}
}

func (c *sessionCmd) peek() (int, bool, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending), c.finished, c.changed
}

// cmdFiles are the agent's ends of a command's named pipes.
type cmdFiles struct {
	stdout, stderr, status *os.File // read ends
	// Write ends the agent holds until the command ends, so that reading
	// does not see end of file before the shell has opened its own.
	stdoutW, stderrW, statusW *os.File
}

func (f *cmdFiles) closeAll() {
	for _, x := range []*os.File{f.stdout, f.stderr, f.status, f.stdoutW, f.stderrW, f.statusW} {
		if x != nil {
			x.Close()
		}
	}
}

// supervise follows c from its start to its end: it reads the output and
// the status line, notices the shell's death, and finishes c once all of
// its output is in.
func (s *session) supervise(c *sessionCmd, f *cmdFiles, done chan<- struct{}) {
	defer s.t.wg.Done()
	defer close(done)
	outEOF, errEOF := make(chan struct{}), make(chan struct{})
	status := make(chan int, 1)
	s.t.wg.Add(3)
	go s.t.drain(f.stdout, chunkTypeStdout, c, outEOF)
	go s.t.drain(f.stderr, chunkTypeStderr, c, errEOF)
	go func() {
		defer s.t.wg.Done()
		readStatus(f.status, c.token, c.markBegun, status)
	}()

	var ex sessionExit
	select {
	case ex.code = <-status:
	case <-s.dead:
		select {
		case ex.code = <-status: // it made it out just before the shell went
		default:
			ex = s.shellExit()
		}
	}
	// The status reader ends on these closes if it still runs.
	f.status.Close()
	f.statusW.Close()

	deadline := time.Now().Add(s.t.srv.opts.OutputGrace)
	s.syncTTY(c, deadline)
	// The shell has closed its ends: end of file comes once no background
	// job holds them. Such a job may hold them for ever, so wait only a
	// grace; its later output is read and dropped (never EPIPE).
	f.stdoutW.Close()
	f.stderrW.Close()
	grace := time.NewTimer(time.Until(deadline))
	for outEOF != nil || errEOF != nil {
		select {
		case <-outEOF:
			outEOF = nil
		case <-errEOF:
			errEOF = nil
		case <-grace.C:
			s.log.Debug("session command: background jobs hold its output", "command", describeText(c.text))
			outEOF, errEOF = nil, nil
		}
	}
	grace.Stop()
	s.commandEnded(c)
	c.finish(ex)
}

const (
	chunkTypeStdout = "stdout"
	chunkTypeStderr = "stderr"
)

// drain reads f into c until end of file or until f is closed (by the
// table, at shutdown), then closes it and closes eof.
func (t *sessionTable) drain(f *os.File, typ string, c *sessionCmd, eof chan<- struct{}) {
	defer t.wg.Done()
	defer close(eof)
	if !t.track(f) {
		f.Close()
		return
	}
	defer t.untrack(f)
	for {
		buf := make([]byte, readChunk)
		n, err := f.Read(buf)
		if n > 0 {
			c.add(chunk{typ: typ, data: buf[:n]})
		}
		if err != nil {
			return
		}
	}
}

// readStatus reads the status lines of a command: "<token> -" when the
// shell begins it (begun is called), then "<token> <code>" when it ends
// (the code is sent to out). Lines without the token are ignored.
func readStatus(f *os.File, token string, begun func(), out chan<- int) {
	var line []byte
	buf := make([]byte, 256)
	for {
		n, err := f.Read(buf)
		line = append(line, buf[:n]...)
		for {
			i := bytes.IndexByte(line, '\n')
			if i < 0 {
				break
			}
			code, ok := parseStatus(line[:i], token)
			switch {
			case ok && code < 0:
				begun()
			case ok:
				out <- code
				return
			}
			line = line[i+1:]
		}
		if len(line) > 1024 {
			line = nil // no status line is that long
		}
		if err != nil {
			return
		}
	}
}

// parseStatus parses "<token> <code>", code 0 to 255, or "<token> -",
// which gives -1.
func parseStatus(line []byte, token string) (int, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(token+" "))
	if !ok {
		return 0, false
	}
	if string(rest) == "-" {
		return -1, true
	}
	code, err := strconv.Atoi(string(rest))
	if err != nil || code < 0 || code > 255 {
		return 0, false
	}
	return code, true
}

// describeText is a short form of a command for logs and messages.
func describeText(text string) string {
	const max = 80
	if len(text) > max {
		return strconv.Quote(text[:max]) + "…"
	}
	return strconv.Quote(text)
}

// unread puts back chunks a call took but could not send.
func (c *sessionCmd) unread(chunks []chunk) {
	if len(chunks) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(append([]chunk(nil), chunks...), c.pending...)
}

// result is how the command ended, once it has.
func (c *sessionCmd) result() (sessionExit, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.exit, c.finished
}

func (c *sessionCmd) isDelivered() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.delivered
}

func (c *sessionCmd) markDelivered() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delivered = true
}

func (c *sessionCmd) markUndelivered() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.delivered = false
}

// counts are the dropped bytes and the duration so far.
func (c *sessionCmd) counts() (dropped int64, duration time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	end := c.ended
	if !c.finished {
		end = time.Now()
	}
	return c.dropped, end.Sub(c.started)
}
