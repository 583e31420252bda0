package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/sandbox"
)

// How the end of an allowed agent call proxied by the server is recorded
// (the REST exec route records its own, in handleExec), before the caller
// sees that end:
//
//   - exec and session exec: the agent's NDJSON stream is watched as it
//     passes for its exit event, whose exit_code completes the record. A
//     session command still running when the call returns ("running":
//     true) has no exit yet: nothing more is recorded.
//   - file write, move and removal, a session started with an environment,
//     the sandbox's environment set (meta): exit code 0 once the agent
//     answered 2xx.
//   - background process: the agent answers at once with the started
//     process; a goroutine then waits for its exit (followProcess).
//   - any of them answered with a non-2xx status: that status.
const (
	// maxEventLine is the longest stream line looked at: an exit event is
	// small, longer lines (output) are skipped, not buffered.
	maxEventLine = 64 << 10
	// maxProcessAnswer bounds what is kept of a process start's answer
	// (the ProcessInfo, which repeats the request's argv or command).
	maxProcessAnswer = 2 * client.MaxRequestBytes
	// processWaitSlice is how long one wait call asks the agent to wait;
	// processWaitGrace is how much longer the server waits for its answer
	// (a paused sandbox's agent answers nothing until it is resumed).
	processWaitSlice = 30 * time.Second
	processWaitGrace = 10 * time.Second
	// processWaitFailures is how many wait calls in a row may fail while
	// the sandbox runs before the server gives up on the process.
	processWaitFailures = 3
	// maxProcessWaits bounds the processes followed at once; past it, a
	// process's record keeps no exit code.
	maxProcessWaits = 4096
)

// callWatch is the http.ResponseWriter an allowed agent call is proxied
// through: it passes everything on, unbuffered, and watches the answer
// for how the action ended. It completes the record before the caller can
// see the end: at the status for a file operation or a refusal, before
// passing on an exit event, and before the last byte of a process start's
// answer. finish completes what the answer's end alone tells.
type callWatch struct {
	http.ResponseWriter
	s    *Server
	g    *guarded
	sb   sandbox.Sandbox
	ag   *agent
	kind audit.Action
	// answerEnds: a 2xx answer ends the action (act.answerEnds).
	answerEnds bool
	// session: the shell session of a session command, whose directory
	// the exit event tells (act.session).
	session string
	status  int  // the answer's, once known
	done    bool // the record is completed (or will be, by a follower)

	// Exec and session streams: the line being read, and whether it is
	// too long to be an exit event.
	line     []byte
	skipping bool

	// Process start: the answer (unless longer than maxProcessAnswer),
	// and its length (-1: unknown).
	body     []byte
	tooLarge bool
	length   int64
}

// watchCall wraps w for the allowed action g (a) in sb; finish must be
// called once the proxy returned.
func (s *Server) watchCall(w http.ResponseWriter, sb sandbox.Sandbox, ag *agent, a act, g *guarded) *callWatch {
	return &callWatch{ResponseWriter: w, s: s, g: g, sb: sb, ag: ag, kind: a.kind, answerEnds: a.answerEnds, session: a.session, done: g == nil}
}

func (c *callWatch) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.answered(code) // 1xx answers come before the final one
	}
	c.ResponseWriter.WriteHeader(code)
}

// answered takes the answer's status: a refusal, or a file operation
// done, completes the record now.
func (c *callWatch) answered(code int) {
	c.status = code
	c.length = -1
	if n, err := strconv.ParseInt(c.Header().Get("Content-Length"), 10, 64); err == nil {
		c.length = n
	}
	switch {
	case c.done:
	case code < 200 || code >= 300:
		c.complete(audit.Record{Status: code})
	case c.answerEnds:
		c.exit(0)
	}
}

func (c *callWatch) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.answered(http.StatusOK)
	}
	if !c.done {
		switch c.kind {
		case audit.ActionExec, audit.ActionSession:
			c.scan(b)
		case audit.ActionProcess:
			if !c.tooLarge && len(c.body)+len(b) > maxProcessAnswer {
				c.tooLarge, c.body = true, nil
			}
			if !c.tooLarge {
				c.body = append(c.body, b...)
			}
			if c.tooLarge || int64(len(c.body)) == c.length {
				c.follow()
			}
		}
	}
	return c.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (the proxy's flushes, full duplex)
// reach the server's writer.
func (c *callWatch) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Flush is for code that asserts http.Flusher.
func (c *callWatch) Flush() { _ = http.NewResponseController(c.ResponseWriter).Flush() }

// scan reads stream lines from b, looking at each one that is short
// enough to be an exit event.
func (c *callWatch) scan(b []byte) {
	for len(b) > 0 && !c.done {
		i := bytes.IndexByte(b, '\n')
		part := b
		if i >= 0 {
			part = b[:i]
		}
		if !c.skipping {
			if len(c.line)+len(part) > maxEventLine {
				c.line, c.skipping = c.line[:0], true
			} else {
				c.line = append(c.line, part...)
			}
		}
		if i < 0 {
			return
		}
		if !c.skipping {
			c.event(c.line)
		}
		c.line, c.skipping = c.line[:0], false
		b = b[i+1:]
	}
}

var exitType = []byte(`"` + agentapi.EventExit + `"`)

// event looks at one stream line: the exit event of a command that ended
// (not a session command still running) completes the record.
func (c *callWatch) event(line []byte) {
	if !bytes.Contains(line, exitType) {
		return
	}
	var ev agentapi.SessionEvent // an ExecEvent with the session's fields
	if err := json.Unmarshal(line, &ev); err != nil || ev.Type != agentapi.EventExit || ev.Running {
		return
	}
	if c.session != "" {
		c.s.sessionCwds.seen(c.sb.ID, c.session, ev.ShellExited, ev.Cwd)
	}
	c.exit(ev.ExitCode)
}

func (c *callWatch) exit(code int) { c.complete(audit.Record{ExitCode: &code}) }

func (c *callWatch) complete(end audit.Record) {
	c.done = true
	c.s.complete(c.g, end, time.Since(c.g.start))
}

// follow starts following the process the answer names.
func (c *callWatch) follow() {
	c.done = true
	var p agentapi.ProcessInfo
	if c.tooLarge || json.Unmarshal(c.body, &p) != nil || p.ID == "" {
		c.s.log.Warn("audit: cannot follow a background process: its start's answer does not name it",
			"sandbox", c.sb.ID, "audit_id", c.g.rec.ID, "bytes", len(c.body), "too_large", c.tooLarge)
		return
	}
	c.s.followProcess(c.g, c.sb, c.ag.client, p)
}

// finish completes the record from the answer's end, when nothing before
// did: a last stream line without its newline, or a process start's
// answer of unknown length. It runs after the proxy returned, or while its
// abort unwinds.
func (c *callWatch) finish() {
	switch {
	case c.done || c.status < 200 || c.status >= 300 || c.answerEnds:
	case c.kind == audit.ActionExec || c.kind == audit.ActionSession:
		if !c.skipping && len(c.line) > 0 {
			c.event(c.line)
		}
	case c.kind == audit.ActionProcess:
		c.follow()
	}
}

// complete appends the line that completes g's record: end's exit code or
// status, with the time the action took.
func (s *Server) complete(g *guarded, end audit.Record, took time.Duration) {
	end.ID, end.Time, end.Tenant, end.Sandbox = g.rec.ID, time.Now().UTC(), g.rec.Tenant, g.rec.Sandbox
	end.DurationMS = max(took.Milliseconds(), 1)
	s.record(end)
}

// followProcess waits, in the background, for the exit of process p that
// the allowed action g started in sb, and completes g's record with its
// exit code and how long it ran. It gives up without a record when the
// server shuts down, the sandbox goes away or is stopped (its processes
// die with its agent), or the agent forgets the process.
func (s *Server) followProcess(g *guarded, sb sandbox.Sandbox, c *agentapi.Client, p agentapi.ProcessInfo) {
	if s.processWaits.Add(1) > maxProcessWaits {
		s.processWaits.Add(-1)
		s.log.Warn("audit: too many background processes followed; this one's exit will not be recorded",
			"sandbox", sb.ID, "process", p.ID, "audit_id", g.rec.ID, "max", maxProcessWaits)
		return
	}
	// The handler that calls this is in flight: Serve waits for s.background after it.
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		defer s.processWaits.Add(-1)
		log := s.log.With("sandbox", sb.ID, "process", p.ID, "audit_id", g.rec.ID)
		if info, ok := s.waitProcess(s.streams, log, sb, c, p); ok {
			took := time.Since(g.start)
			if !info.Started.IsZero() && info.Ended.After(info.Started) {
				took = info.Ended.Sub(info.Started)
			}
			code := info.ExitCode
			s.complete(g, audit.Record{ExitCode: &code}, took)
		}
	}()
}

// waitProcess waits until process p of sb has exited and returns its
// final state, or ok false when it cannot tell (see followProcess).
func (s *Server) waitProcess(ctx context.Context, log *slog.Logger, sb sandbox.Sandbox, c *agentapi.Client,
	p agentapi.ProcessInfo) (agentapi.ProcessInfo, bool) {
	slice := s.processWait
	if slice <= 0 {
		slice = processWaitSlice
	}
	failures := 0
	for {
		wctx, cancel := context.WithTimeout(ctx, slice+processWaitGrace)
		info, err := c.WaitProcess(wctx, p.ID, slice)
		cancel()
		if ctx.Err() != nil {
			log.Debug("audit: stopped following a background process: the server is shutting down")
			return agentapi.ProcessInfo{}, false
		}
		var apiErr *agentapi.APIError
		switch {
		case err == nil && (info.PID != p.PID || !info.Started.Equal(p.Started)):
			// The agent started again and gave the id to another process.
			log.Debug("audit: stopped following a background process: the agent no longer has it")
			return agentapi.ProcessInfo{}, false
		case err == nil && !info.Running():
			return info, true
		case err == nil:
			failures = 0
			continue // still running
		case errors.As(err, &apiErr):
			log.Debug("audit: stopped following a background process", "err", err)
			return agentapi.ProcessInfo{}, false
		}
		// The agent did not answer: is the sandbox still there, and running?
		cur, gerr := s.rt.Get(ctx, sb.ID)
		switch {
		case ctx.Err() != nil:
			return agentapi.ProcessInfo{}, false
		case errors.Is(gerr, sandbox.ErrNotFound):
			log.Debug("audit: stopped following a background process: the sandbox is gone")
			return agentapi.ProcessInfo{}, false
		case gerr == nil && cur.State == "paused":
			continue // frozen: its processes go on once it is resumed
		case gerr == nil && cur.Status != sandbox.StatusRunning:
			log.Debug("audit: stopped following a background process: the sandbox stopped", "state", cur.State)
			return agentapi.ProcessInfo{}, false
		}
		if failures++; failures >= processWaitFailures {
			log.Debug("audit: stopped following a background process: its agent does not answer", "err", err, "get_err", gerr)
			return agentapi.ProcessInfo{}, false
		}
		t := time.NewTimer(time.Second)
		select {
		case <-ctx.Done():
			t.Stop()
			return agentapi.ProcessInfo{}, false
		case <-t.C:
		}
	}
}
