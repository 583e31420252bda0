package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// sessionTable holds the persistent shell sessions by name. The mechanism
// is described in session_shell.go.
type sessionTable struct {
	srv *Server
	log *slog.Logger
	// wg counts every goroutine of every session; close waits for them.
	wg sync.WaitGroup

	mu       sync.Mutex
	sessions map[string]*session
	closed   bool
	base     string                // directory of the sessions' command files, made on first use
	readers  map[*os.File]struct{} // output pipes being read, closed by close
}

func newSessionTable(s *Server) *sessionTable {
	return &sessionTable{
		srv:      s,
		log:      s.log,
		sessions: make(map[string]*session),
		readers:  make(map[*os.File]struct{}),
	}
}

// close kills every session, stops reading what background jobs still
// write, and returns once every goroutine of the sessions has ended.
func (t *sessionTable) close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		t.wg.Wait()
		return
	}
	t.closed = true
	list := make([]*session, 0, len(t.sessions))
	for _, s := range t.sessions {
		list = append(list, s)
	}
	t.sessions = map[string]*session{}
	t.mu.Unlock()
	for _, s := range list {
		<-s.ready
		if s.startErr == nil {
			s.kill()
		}
	}
	t.mu.Lock()
	for f := range t.readers {
		f.Close()
	}
	base := t.base
	t.mu.Unlock()
	t.wg.Wait()
	if base != "" {
		if err := os.RemoveAll(base); err != nil {
			t.log.Warn("remove session files", "err", err)
		}
	}
	if len(list) > 0 {
		t.log.Info("killed sessions", "count", len(list))
	}
}

// goAdd counts n goroutines about to start, unless the table is closed.
func (t *sessionTable) goAdd(n int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.wg.Add(n)
	return true
}

// track registers an output pipe being read, so that close can end the
// read; it refuses once the table is closed.
func (t *sessionTable) track(f *os.File) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return false
	}
	t.readers[f] = struct{}{}
	return true
}

func (t *sessionTable) untrack(f *os.File) {
	t.mu.Lock()
	delete(t.readers, f)
	t.mu.Unlock()
	f.Close()
}

// sessionDir makes a fresh directory for a session's command files. The
// parent belongs to the agent and others may only traverse it, so the
// sandbox user can open the files by name but cannot list, remove or
// replace them.
func (t *sessionTable) sessionDir(name string) (string, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.base == "" {
		base, err := os.MkdirTemp("", "berth-sessions-")
		if err != nil {
			return "", fmt.Errorf("session directory: %w", err)
		}
		if err := os.Chmod(base, 0o711); err != nil {
			os.RemoveAll(base)
			return "", fmt.Errorf("session directory: %w", err)
		}
		t.base = base
	}
	dir := filepath.Join(t.base, name)
	if err := os.RemoveAll(dir); err != nil {
		return "", fmt.Errorf("session directory: %w", err)
	}
	if err := os.Mkdir(dir, 0o711); err != nil {
		return "", fmt.Errorf("session directory: %w", err)
	}
	return dir, nil
}

// get returns a started session, or a 404.
func (t *sessionTable) get(ctx context.Context, name string) (*session, *apiError) {
	if e := checkSessionName(name); e != nil {
		return nil, e
	}
	t.mu.Lock()
	s := t.sessions[name]
	t.mu.Unlock()
	if s != nil {
		select {
		case <-s.ready:
		case <-ctx.Done():
			return nil, newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "session %q is still starting", name)
		}
		if s.startErr == nil {
			return s, nil
		}
	}
	return nil, newAPIError(http.StatusNotFound, agentapi.CodeNotFound, "no session named %q", name)
}

// acquire returns the session name with a running shell, starting one if
// there is none or its shell has exited (exclusive: only then). opts apply
// to a shell it starts; nil means those of the session's last shell, or
// the defaults. created reports whether it started the shell.
func (t *sessionTable) acquire(ctx context.Context, name string, opts *agentapi.SessionOptions, exclusive bool) (s *session, created bool, e *apiError) {
	for {
		t.mu.Lock()
		if t.closed {
			t.mu.Unlock()
			return nil, false, newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "%v", errShuttingDown)
		}
		old := t.sessions[name]
		if old != nil {
			select {
			case <-old.ready:
			default:
				// Another call is starting it: wait, then look again.
				t.mu.Unlock()
				select {
				case <-old.ready:
					continue
				case <-ctx.Done():
					return nil, false, newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "session %q is still starting", name)
				}
			}
			if old.startErr == nil && !old.isDead() {
				t.mu.Unlock()
				if exclusive {
					return nil, false, newAPIError(http.StatusConflict, agentapi.CodeExists,
						"session %q exists; use it, or delete it first", name)
				}
				return old, false, nil
			}
		}
		var o agentapi.SessionOptions
		switch {
		case opts != nil:
			o = *opts
		case old != nil:
			o = old.spec.opts
		}
		spec, e := t.resolveSpec(o)
		if e != nil {
			t.mu.Unlock()
			return nil, false, e
		}
		s = &session{
			t:       t,
			name:    name,
			spec:    spec,
			log:     t.log.With("session", name),
			created: time.Now(),
			ready:   make(chan struct{}),
			dead:    make(chan struct{}),
		}
		t.sessions[name] = s
		t.mu.Unlock()

		s.startErr = s.start()
		close(s.ready)
		if s.startErr != nil {
			t.mu.Lock()
			if t.sessions[name] == s {
				delete(t.sessions, name)
			}
			t.mu.Unlock()
			return nil, false, s.startErr
		}
		return s, true, nil
	}
}

// remove takes a session out of the table and kills it.
func (t *sessionTable) remove(ctx context.Context, name string) *apiError {
	s, e := t.get(ctx, name)
	if e != nil {
		return e
	}
	t.mu.Lock()
	if t.sessions[name] == s {
		delete(t.sessions, name)
	}
	t.mu.Unlock()
	s.kill()
	s.log.Info("session deleted")
	return nil
}

// list describes every session, by name.
func (t *sessionTable) list() []agentapi.SessionInfo {
	t.mu.Lock()
	list := make([]*session, 0, len(t.sessions))
	for _, s := range t.sessions {
		list = append(list, s)
	}
	t.mu.Unlock()
	out := make([]agentapi.SessionInfo, 0, len(list))
	for _, s := range list {
		select {
		case <-s.ready:
			if s.startErr == nil {
				out = append(out, s.info())
			}
		default: // starting: not there yet
		}
	}
	slices.SortFunc(out, func(a, b agentapi.SessionInfo) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (s *session) info() agentapi.SessionInfo {
	info := agentapi.SessionInfo{
		Name:    s.name,
		Shell:   s.spec.shell,
		PID:     s.shell.pid,
		Created: s.created,
		Alive:   !s.isDead(),
		Cwd:     s.cwd(),
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exited {
		info.ExitCode, info.Signal = s.exitInfo.code, s.exitInfo.signal
	}
	if c := s.cur; c != nil && !c.isDelivered() {
		text := c.text
		if len(text) > 200 {
			text = text[:200]
		}
		ex, done := c.result()
		info.Command = &agentapi.SessionCommand{Command: text, Started: c.started, Running: !done}
		if done {
			info.Command.ExitCode = ex.code
		}
	}
	return info
}

func (s *Server) sessionRoutes() []route {
	t := s.sessions
	return []route{
		{http.MethodPost, agentapi.PathSessions, t.handleCreate},
		{http.MethodGet, agentapi.PathSessions, t.handleList},
		{http.MethodGet, agentapi.PathSession, t.handleInfo},
		{http.MethodDelete, agentapi.PathSession, t.handleDelete},
		{http.MethodPost, agentapi.PathSessionExec, t.handleExec},
		{http.MethodPost, agentapi.PathSessionInput, t.handleInput},
		{http.MethodGet, agentapi.PathSessionOutput, t.handleOutput},
	}
}

func (t *sessionTable) handleCreate(w http.ResponseWriter, r *http.Request) {
	req, e := decodeSessionCreateRequest(r.Body, t.srv.opts.MaxRequestBytes)
	if e != nil {
		writeError(w, e)
		return
	}
	s, _, e := t.acquire(r.Context(), req.Name, &req.SessionOptions, true)
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusCreated, s.info())
}

func (t *sessionTable) handleList(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, agentapi.SessionList{Sessions: t.list()})
}

func (t *sessionTable) handleInfo(w http.ResponseWriter, r *http.Request) {
	s, e := t.get(r.Context(), r.PathValue("name"))
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, s.info())
}

func (t *sessionTable) handleDelete(w http.ResponseWriter, r *http.Request) {
	if e := t.remove(r.Context(), r.PathValue("name")); e != nil {
		writeError(w, e)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (t *sessionTable) handleExec(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if e := checkSessionName(name); e != nil {
		writeError(w, e)
		return
	}
	req, e := decodeSessionExecRequest(r.Body, t.srv.opts.MaxRequestBytes)
	if e != nil {
		writeError(w, e)
		return
	}
	lim := streamLimits{timeout: req.TimeoutMS, noOutput: req.NoOutputTimeoutMS}
	if req.Command == "" {
		t.attachAndStream(w, r, name, lim, nil)
		return
	}
	maxOut := req.MaxOutputBytes
	if maxOut == 0 {
		maxOut = t.srv.opts.MaxOutputBytes
	}
	// The shell may exit between acquire and exec (it was exiting): then
	// start a new one, once.
	for try := 0; ; try++ {
		s, created, e := t.acquire(r.Context(), name, req.Create, false)
		if e != nil {
			writeError(w, e)
			return
		}
		c, e := s.exec(req.Command, maxOut)
		if e != nil {
			if s.isDead() && try == 0 {
				continue
			}
			writeError(w, e)
			return
		}
		s.log.Info("session exec", "command", describeText(req.Command), "new_session", created)
		s.stream(r.Context(), w, c, agentapi.SessionEvent{NewSession: created}, lim)
		return
	}
}

func (t *sessionTable) handleInput(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if e := checkSessionName(name); e != nil {
		writeError(w, e)
		return
	}
	req, e := decodeSessionInputRequest(r.Body, t.srv.opts.MaxRequestBytes)
	if e != nil {
		writeError(w, e)
		return
	}
	lim := streamLimits{timeout: req.TimeoutMS, noOutput: req.NoOutputTimeoutMS}
	t.attachAndStream(w, r, name, lim, &req)
}

func (t *sessionTable) handleOutput(w http.ResponseWriter, r *http.Request) {
	q, e := parseOutputQuery(r.URL.Query())
	if e != nil {
		writeError(w, e)
		return
	}
	t.attachAndStream(w, r, r.PathValue("name"), streamLimits{timeout: q.TimeoutMS, noOutput: q.NoOutputTimeoutMS}, nil)
}

// attachAndStream streams the session's current command, after typing
// input if there is some.
func (t *sessionTable) attachAndStream(w http.ResponseWriter, r *http.Request, name string, lim streamLimits, input *agentapi.SessionInputRequest) {
	s, e := t.get(r.Context(), name)
	if e != nil {
		writeError(w, e)
		return
	}
	c, e := s.attach(input != nil)
	if e != nil {
		writeError(w, e)
		return
	}
	if input != nil {
		if e := s.typeInput(c, *input); e != nil {
			s.detach()
			writeError(w, e)
			return
		}
	}
	s.stream(r.Context(), w, c, agentapi.SessionEvent{}, lim)
}

// inputTimeout bounds a write of input to the terminal, which blocks when
// the command does not read and the terminal's buffer is full.
const inputTimeout = 5 * time.Second

// typeInput types input on the terminal of c.
func (s *session) typeInput(c *sessionCmd, req agentapi.SessionInputRequest) *apiError {
	s.log.Debug("session input", "input", describeInput(req))
	if !c.awaitBegun(inputTimeout) {
		return newAPIError(http.StatusConflict, agentapi.CodeBusy,
			"session %q: the shell has not begun %s after %s; it is not reading its input", s.name, describeText(c.text), inputTimeout)
	}
	if err := s.tty.master.SetWriteDeadline(time.Now().Add(inputTimeout)); err != nil {
		return internalError("session %q: %v", s.name, err)
	}
	_, err := s.tty.master.Write(inputBytes(req))
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return newAPIError(http.StatusConflict, agentapi.CodeBusy,
			"session %q: %s does not read its input: the terminal's buffer stayed full for %s", s.name, describeText(c.text), inputTimeout)
	case errors.Is(err, os.ErrClosed):
		return newAPIError(http.StatusConflict, agentapi.CodeIdle, "session %q: %v", s.name, errSessionGone)
	case err != nil:
		return internalError("session %q: write input: %v", s.name, err)
	}
	return nil
}

// streamLimits are a call's timeouts, in milliseconds; 0: none.
type streamLimits struct {
	timeout, noOutput int64
}

// stream sends c's output as NDJSON events until c ends (an exit event),
// a timeout (an exit event with running set), or the client leaves; the
// command goes on in the last two cases. It detaches the call at the end.
func (s *session) stream(ctx context.Context, w http.ResponseWriter, c *sessionCmd, start agentapi.SessionEvent, lim streamLimits) {
	// Detach before the final event: a client that reads it may call again
	// at once.
	detached := false
	detach := func() {
		if !detached {
			detached = true
			s.detach()
		}
	}
	defer detach()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	ew := &sessionEventWriter{enc: json.NewEncoder(w), rc: http.NewResponseController(w)}
	start.Type, start.PID, start.Session = agentapi.EventStart, s.shell.pid, s.name
	if !ew.send(start) {
		return
	}
	var hard, quiet <-chan time.Time
	if lim.timeout > 0 {
		t := time.NewTimer(time.Duration(lim.timeout) * time.Millisecond)
		defer t.Stop()
		hard = t.C
	}
	var quietT *time.Timer
	if lim.noOutput > 0 {
		quietT = time.NewTimer(time.Duration(lim.noOutput) * time.Millisecond)
		defer quietT.Stop()
		quiet = quietT.C
	}
	for {
		chunks, finished, changed := c.take()
		for i, ch := range chunks {
			if !ew.send(agentapi.SessionEvent{ExecEvent: agentapi.ExecEvent{Type: ch.typ, Data: ch.data}}) {
				c.unread(chunks[i:]) // for the next call
				return
			}
		}
		if len(chunks) > 0 && quietT != nil {
			quietT.Reset(time.Duration(lim.noOutput) * time.Millisecond)
		}
		if finished {
			if len(chunks) > 0 {
				continue // more may have come meanwhile; take again
			}
			ex, _ := c.result()
			dropped, d := c.counts()
			ev := agentapi.SessionEvent{
				ExecEvent: agentapi.ExecEvent{
					Type: agentapi.EventExit, ExitCode: ex.code, Signal: ex.signal,
					DroppedBytes: dropped, DurationMS: d.Milliseconds(),
				},
				ShellExited: ex.shellExited,
				Cwd:         s.cwd(),
			}
			c.markDelivered()
			detach()
			if !ew.send(ev) {
				c.markUndelivered() // the next call gets it
			}
			return
		}
		select {
		case <-changed:
		case <-hard:
			detach()
			ew.send(s.runningEvent(c, false))
			return
		case <-quiet:
			detach()
			ew.send(s.runningEvent(c, true))
			return
		case <-ctx.Done():
			return // the command goes on; a later call reads on
		}
	}
}

// runningEvent ends a call whose command still runs.
func (s *session) runningEvent(c *sessionCmd, quiet bool) agentapi.SessionEvent {
	dropped, d := c.counts()
	return agentapi.SessionEvent{
		ExecEvent:       agentapi.ExecEvent{Type: agentapi.EventExit, DroppedBytes: dropped, DurationMS: d.Milliseconds()},
		Running:         true,
		NoOutputTimeout: quiet,
	}
}

// sessionEventWriter writes NDJSON events, flushing each; after the first
// failed write it drops the rest.
type sessionEventWriter struct {
	enc *json.Encoder
	rc  *http.ResponseController
	err error
}

func (ew *sessionEventWriter) send(ev agentapi.SessionEvent) bool {
	if ew.err != nil {
		return false
	}
	if err := ew.enc.Encode(ev); err != nil {
		ew.err = err
		return false
	}
	if err := ew.rc.Flush(); err != nil {
		ew.err = err
		return false
	}
	return true
}
