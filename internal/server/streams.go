package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Content types of streams.
const (
	contentNDJSON = "application/x-ndjson"
	contentSSE    = "text/event-stream"
)

// wantsSSE reports whether the caller asked for server-sent events.
func wantsSSE(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Accept"), contentSSE)
}

// errClientGone: writing to the caller failed; nothing more can be said.
var errClientGone = errors.New("client went away")

// eventStream writes events as NDJSON lines or SSE events, each flushed at
// once. The status line goes with the first event, so an error before it
// can still be an ordinary error answer.
type eventStream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	sse     bool
	started bool
}

func newEventStream(w http.ResponseWriter, r *http.Request) *eventStream {
	return &eventStream{w: w, rc: http.NewResponseController(w), sse: wantsSSE(r)}
}

func (st *eventStream) start() {
	if st.started {
		return
	}
	st.started = true
	h := st.w.Header()
	if st.sse {
		h.Set("Content-Type", contentSSE)
	} else {
		h.Set("Content-Type", contentNDJSON)
	}
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	st.w.WriteHeader(http.StatusOK)
}

// send writes one event of type typ.
func (st *eventStream) send(typ string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s event: %w", typ, err)
	}
	st.start()
	if st.sse {
		_, err = fmt.Fprintf(st.w, "event: %s\ndata: %s\n\n", typ, b)
	} else {
		b = append(b, '\n')
		_, err = st.w.Write(b)
	}
	if err == nil {
		err = st.rc.Flush()
	}
	if err != nil {
		return fmt.Errorf("%w: %w", errClientGone, err)
	}
	return nil
}

// comment writes an SSE comment (a keep-alive).
func (st *eventStream) comment(text string) error {
	st.start()
	if _, err := fmt.Fprintf(st.w, ": %s\n\n", text); err != nil {
		return err
	}
	return st.rc.Flush()
}

// checkExec checks an exec request and makes the agent's request of it.
func checkExec(req client.ExecRequest) error {
	switch {
	case len(req.Cmd) > 0 && req.Command != "":
		return badRequestf("cmd and command: set one of them, not both")
	case len(req.Cmd) == 0 && req.Command == "":
		return badRequestf("cmd or command: one of them is required")
	}
	if req.Session != "" {
		switch {
		case req.Cwd != "":
			return badRequestf("cwd: not with session (the session's shell keeps its own; cd in the command)")
		case len(req.Env) > 0:
			return badRequestf("env: not with session (export in the command)")
		case req.Stdin != nil:
			return badRequestf("stdin: not with session")
		}
	} else if req.NoOutputTimeoutMS != 0 {
		return badRequestf("no_output_timeout_ms: only with session")
	}
	return nil
}

func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	var req client.ExecRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := checkExec(req); err != nil {
		s.writeError(w, r, err)
		return
	}
	sb, ag, err := s.runningAgent(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var g *guarded
	if s.policyFor(tenantOf(r), sb) != PolicyOff {
		a := s.judgeCommandEnv(audit.ActionExec, req.Command, req.Cmd, req.Env)
		if req.Session != "" {
			command := req.Command
			if command == "" {
				command = agentapi.ShellJoin(req.Cmd)
			}
			a = s.judgeSessionCommand(sb.ID, req.Session, command, req.Env)
		}
		var ok bool
		if g, ok = s.guard(w, r, sb, a); !ok {
			return
		}
	}
	ctx := r.Context()
	st := newEventStream(w, r)
	start := time.Now()
	// The exit event is the last: measure before the caller can see it.
	send := func(typ string, ev any) error {
		if typ == agentapi.EventExit {
			s.metrics.exec.Observe(time.Since(start).Seconds())
		}
		return st.send(typ, ev)
	}
	// The exit completes the record before the caller sees it.
	onExit := func(e agentapi.ExecEvent, running bool) {
		if e.Type == agentapi.EventExit && !running {
			s.done(g, e.ExitCode)
		}
	}
	if req.Session != "" {
		command := req.Command
		if command == "" {
			command = agentapi.ShellJoin(req.Cmd)
		}
		_, err = ag.client.SessionExec(ctx, req.Session, agentapi.SessionExecRequest{
			Command: command, TimeoutMS: req.TimeoutMS, NoOutputTimeoutMS: req.NoOutputTimeoutMS, MaxOutputBytes: req.MaxOutputBytes,
		}, func(ev agentapi.SessionEvent) error {
			if ev.Type == agentapi.EventExit && !ev.Running {
				s.sessionCwds.seen(sb.ID, req.Session, ev.ShellExited, ev.Cwd)
			}
			onExit(ev.ExecEvent, ev.Running)
			return send(ev.Type, ev)
		})
	} else {
		_, err = ag.client.Exec(ctx, agentapi.ExecRequest{
			Argv: req.Cmd, Command: req.Command, Cwd: req.Cwd, Env: req.Env, Stdin: req.Stdin,
			TimeoutMS: req.TimeoutMS, MaxOutputBytes: req.MaxOutputBytes,
		}, func(ev agentapi.ExecEvent) error { onExit(ev, false); return send(ev.Type, ev) })
	}
	s.view.Touch(sb.ID)
	switch {
	case err == nil:
	case !st.started:
		var apiErr *agentapi.APIError
		switch {
		case ctx.Err() != nil && s.streams.Err() != nil:
			err = errShuttingDown
		case ctx.Err() == nil && !errors.As(err, &apiErr):
			err = fmt.Errorf("%w: %w", errAgent, err)
		}
		s.writeError(w, r, err)
	case errors.Is(err, errClientGone):
		s.log.Debug("exec: client went away", "sandbox", sb.ID, "err", err)
	default:
		// The stream has begun: its last line says what went wrong.
		if ctx.Err() != nil && s.streams.Err() != nil {
			err = fmt.Errorf("%w: the exec was cancelled", errShuttingDown)
		}
		_, code := errorStatus(err)
		s.metrics.errors.WithLabelValues(code).Inc()
		_ = st.send(agentapi.EventError, agentapi.ExecEvent{Type: agentapi.EventError, Error: &agentapi.Error{Code: code, Message: err.Error()}})
	}
}

func (s *Server) handleLogs(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if err := checkQuery(q, nil, "follow", "tail"); err != nil {
		s.writeError(w, r, err)
		return
	}
	follow, err := parseBool(q.Get("follow"))
	if err != nil {
		s.writeError(w, r, badRequestf("follow %q: use 1 or 0", q.Get("follow")))
		return
	}
	tail := q.Get("tail")
	if tail == "" {
		tail = "all"
	} else if n, err := strconv.Atoi(tail); tail != "all" && (err != nil || n < 0) {
		s.writeError(w, r, badRequestf("tail %q: a number of lines, or all", tail))
		return
	}
	_, sb, err := s.sandboxFor(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx := r.Context()
	if follow {
		// A follow ends when a shutdown begins.
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		defer context.AfterFunc(s.streams, cancel)()
	}
	rc, err := s.rt.Logs(ctx, sb.ID, sandbox.LogOptions{Follow: follow, Tail: tail})
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rcw := http.NewResponseController(w)
	_ = rcw.Flush()
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if follow {
				_ = rcw.Flush()
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && ctx.Err() == nil {
				s.log.Debug("logs: stream ended", "sandbox", sb.ID, "err", err)
			}
			return
		}
	}
}

func parseBool(s string) (bool, error) {
	switch s {
	case "", "0", "false":
		return false, nil
	case "1", "true":
		return true, nil
	}
	return false, errors.New("not a boolean")
}

// eventOwner is the tenant an event belongs to.
func eventOwner(e monitor.Event) string {
	if e.Owner != "" {
		return e.Owner
	}
	if e.Sandbox != nil {
		return e.Sandbox.Owner
	}
	return ""
}

func (s *Server) handleEvents(w http.ResponseWriter, r *http.Request) {
	t := tenantOf(r)
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		s.writeError(w, r, err)
		return
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	defer context.AfterFunc(s.streams, cancel)()
	ch := s.view.Subscribe(ctx)
	st := &eventStream{w: w, rc: http.NewResponseController(w), sse: true}
	// The subscription exists once the caller sees the answer's head.
	if err := st.comment("subscribed"); err != nil {
		return
	}
	tick := time.NewTicker(s.opts.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case e, ok := <-ch:
			if !ok {
				return
			}
			if eventOwner(e) != t.Name {
				continue
			}
			if err := st.send(e.Type, e); err != nil {
				return
			}
		case <-tick.C:
			if err := st.comment("ping"); err != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
