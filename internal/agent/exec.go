package agent

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// readChunk is the size of one read from an output pipe, and so the largest
// data of one stdout/stderr event.
const readChunk = 32 << 10

// handleExec runs one command and streams its events as NDJSON.
func (s *Server) handleExec(w http.ResponseWriter, r *http.Request) {
	req, e := decodeExecRequest(r.Body, s.opts.MaxRequestBytes)
	if e != nil {
		writeError(w, e)
		return
	}
	spec, e := s.execSpec(req)
	if e != nil {
		writeError(w, e)
		return
	}
	if s.procs.isClosed() {
		writeError(w, newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "%v", errShuttingDown))
		return
	}
	p, pp, err := startProcess(spec)
	if err != nil {
		writeError(w, startError(req, spec, err))
		return
	}
	if err := s.procs.add(p); err != nil {
		_ = p.killGroup(syscall.SIGKILL)
		<-p.exited
		_, _ = p.reap()
		pp.closeAll()
		writeError(w, newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "%v", err))
		return
	}
	defer s.procs.remove(p.id)

	log := s.log.With("pid", p.pid, "exec", describe(req))
	log.Info("exec start", "cwd", spec.Dir)
	exit := s.stream(r.Context(), w, p, pp, req, log)
	log.Info("exec exit", "exit_code", exit.ExitCode, "signal", exit.Signal,
		"timed_out", exit.TimedOut, "dropped_bytes", exit.DroppedBytes, "duration_ms", exit.DurationMS)
}

// execSpec resolves the request against the sandbox: working directory,
// environment, program. Every mistake of the caller is a 400 naming it.
func (s *Server) execSpec(req agentapi.ExecRequest) (procSpec, *apiError) {
	dir, err := resolveCwd(s.opts.Workdir, req.Cwd)
	if err != nil {
		return procSpec{}, badRequest("%v", err)
	}
	if err := checkDir(dir); err != nil {
		return procSpec{}, badRequest("%v", err)
	}
	env := mergeEnv(*s.baseEnv.Load(), req.Env)
	spec := procSpec{Dir: dir, Env: env, Cred: s.cred, Stdin: req.Stdin}
	if len(req.Argv) > 0 {
		path, err := lookPath(req.Argv[0], envValue(env, "PATH"), dir)
		if err != nil {
			return procSpec{}, badRequest("%v", err)
		}
		spec.Path, spec.Argv = path, req.Argv
	} else {
		spec.Path, spec.Argv = s.shell, []string{s.shell, "-c", req.Command}
	}
	return spec, nil
}

// startError tells a start failure the caller can fix (400) from one of
// the agent (500).
func startError(req agentapi.ExecRequest, spec procSpec, err error) *apiError {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		switch errno {
		case syscall.ENOENT, syscall.EACCES, syscall.ENOEXEC, syscall.ENOTDIR, syscall.EPERM, syscall.ELOOP, syscall.ENAMETOOLONG, syscall.E2BIG:
			return badRequest("cannot start %s in %q: %v", describe(req), spec.Dir, unwrapPath(err))
		case syscall.EAGAIN, syscall.ENOMEM:
			// The sandbox's pids or memory limit: the caller's processes
			// fill it; ending some makes room.
			return newAPIError(http.StatusTooManyRequests, agentapi.CodeBusy,
				"cannot start %s: the sandbox is at its process or memory limit (%v); end some of its processes", describe(req), err)
		}
	}
	return newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, "start %s: %v", describe(req), err)
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// chunk is one read of an output pipe, or its end (eof).
type chunk struct {
	typ  string
	data []byte
	eof  bool
}

// stream sends the start event, then the output as it is read, then the
// exit event. It returns only when the process has exited and been reaped
// and both output pipes are finished with, so it leaves no goroutine.
func (s *Server) stream(ctx context.Context, w http.ResponseWriter, p *process, pp *pipes, req agentapi.ExecRequest, log *slog.Logger) agentapi.ExecEvent {
	defer pp.closeAll()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	ew := newEventWriter(w)
	ew.send(agentapi.ExecEvent{Type: agentapi.EventStart, PID: p.pid})

	chunks := make(chan chunk, 4)
	go readPipe(pp.stdout, agentapi.EventStdout, chunks)
	go readPipe(pp.stderr, agentapi.EventStderr, chunks)
	stdinDone := make(chan struct{})
	go writeStdin(pp.stdin, req.Stdin, stdinDone)

	var timeout <-chan time.Time
	if req.TimeoutMS > 0 {
		t := time.NewTimer(time.Duration(req.TimeoutMS) * time.Millisecond)
		defer t.Stop()
		timeout = t.C
	}
	maxOut := req.MaxOutputBytes
	if maxOut == 0 {
		maxOut = s.opts.MaxOutputBytes
	}

	var (
		exited   = p.exited
		done     = ctx.Done()
		grace    <-chan time.Time
		graceT   *time.Timer
		open     = 2
		sent     int64
		dropped  int64
		timedOut bool
		ended    time.Time
	)
	kill := func(why string) {
		if err := p.killGroup(syscall.SIGKILL); err != nil {
			log.Warn("exec kill", "why", why, "err", err)
		}
	}
	for open > 0 || exited != nil {
		select {
		case c := <-chunks:
			if graceT != nil && time.Since(ended) < maxDrain {
				// Output still flows after the exit: the grace counts from
				// the last chunk, so a slow client loses nothing (but a
				// daemon writing forever does not hold the call).
				graceT.Reset(s.opts.OutputGrace)
			}
			if c.eof {
				open--
				continue
			}
			data := c.data
			if room := maxOut - sent; int64(len(data)) > room {
				dropped += int64(len(data)) - room
				data = data[:room]
			}
			if len(data) == 0 {
				continue
			}
			sent += int64(len(data))
			if !ew.send(agentapi.ExecEvent{Type: c.typ, Data: data}) && done != nil {
				// The client is gone: one-shot semantics, the command goes too.
				kill("write failed")
				done = nil
			}
		case <-exited:
			exited, timeout, done = nil, nil, nil
			ended = time.Now()
			// A backgrounded grandchild may hold the pipes open forever:
			// give the output a short grace, then stop reading.
			graceT = time.NewTimer(s.opts.OutputGrace)
			defer graceT.Stop()
			grace = graceT.C
		case <-timeout:
			timeout = nil
			timedOut = true
			kill("timeout")
		case <-done:
			done = nil
			kill("client gone")
		case <-grace:
			grace = nil
			deadline := time.Now()
			_ = pp.stdout.SetReadDeadline(deadline)
			_ = pp.stderr.SetReadDeadline(deadline)
		}
	}
	if pp.stdin != nil {
		_ = pp.stdin.SetWriteDeadline(time.Now())
	}
	<-stdinDone

	exit := agentapi.ExecEvent{
		Type:         agentapi.EventExit,
		TimedOut:     timedOut,
		DroppedBytes: dropped,
		DurationMS:   ended.Sub(p.started).Milliseconds(),
	}
	st, err := p.reap()
	if err != nil {
		log.Error("exec reap", "err", err)
		exit.Type = agentapi.EventError
		exit.Error = &agentapi.Error{Code: agentapi.CodeInternal, Message: err.Error()}
		ew.send(exit)
		return exit
	}
	exit.ExitCode, exit.Signal = exitStatus(st)
	ew.send(exit)
	return exit
}

// readPipe sends what it reads from f to out, then one eof chunk. The
// receiver always drains until eof, so sends never block forever.
func readPipe(f *os.File, typ string, out chan<- chunk) {
	for {
		buf := make([]byte, readChunk)
		n, err := f.Read(buf)
		if n > 0 {
			out <- chunk{typ: typ, data: buf[:n]}
		}
		if err != nil {
			out <- chunk{typ: typ, eof: true}
			return
		}
	}
}

// writeStdin writes data to f and closes it, so the process sees EOF.
func writeStdin(f *os.File, data []byte, done chan<- struct{}) {
	defer close(done)
	if f == nil {
		return
	}
	// A write error means the process stopped reading (EPIPE) or outlived
	// its grace; either way there is no one to tell.
	_, _ = f.Write(data)
	f.Close()
}

// eventWriter writes NDJSON events, flushing each one. After the first
// failed write it drops the rest.
type eventWriter struct {
	enc *json.Encoder
	rc  *http.ResponseController
	err error
}

func newEventWriter(w http.ResponseWriter) *eventWriter {
	return &eventWriter{enc: json.NewEncoder(w), rc: http.NewResponseController(w)}
}

// send writes ev and reports whether it got out.
func (ew *eventWriter) send(ev agentapi.ExecEvent) bool {
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
