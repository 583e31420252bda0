package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coder/websocket"
	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agentapi"
)

// ptyTERM is the TERM of a terminal's shell, unless the request sets one.
const ptyTERM = "xterm-256color"

// ptyReadLimit is the largest websocket message the agent reads from a
// terminal's client (a big paste).
const ptyReadLimit = 1 << 20

// ptyRoutes serves interactive terminals over websockets.
func (s *Server) ptyRoutes() []route {
	return []route{{http.MethodGet, agentapi.PathPTY, s.handlePTY}}
}

// ptyParams are a terminal request's query parameters.
type ptyParams struct {
	cols, rows int
	cmd, cwd   string
	env        map[string]string
}

// parsePTYQuery reads and checks a terminal request's query. Parameters it
// does not know (such as the key) are ignored.
func parsePTYQuery(q url.Values) (ptyParams, *apiError) {
	p := ptyParams{cols: agentapi.DefaultPTYCols, rows: agentapi.DefaultPTYRows, cmd: q.Get(agentapi.PTYQueryCmd), cwd: q.Get(agentapi.PTYQueryCwd)}
	for _, f := range []struct {
		name string
		dst  *int
	}{{agentapi.PTYQueryCols, &p.cols}, {agentapi.PTYQueryRows, &p.rows}} {
		v := q.Get(f.name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > agentapi.MaxPTYSize {
			return ptyParams{}, badRequest("query parameter %q must be a whole number from 1 to %d, not %q", f.name, agentapi.MaxPTYSize, v)
		}
		*f.dst = n
	}
	for _, kv := range q[agentapi.PTYQueryEnv] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return ptyParams{}, badRequest("query parameter %q must be NAME=VALUE, not %q", agentapi.PTYQueryEnv, kv)
		}
		if p.env == nil {
			p.env = map[string]string{}
		}
		p.env[k] = v
	}
	return p, nil
}

// ptyShell is the interactive shell: the user's login shell, else the
// agent's shell (bash when present).
func (s *Server) ptyShell() string {
	if s.user.Shell != "" && checkExecutable(s.user.Shell) == nil {
		return s.user.Shell
	}
	return s.shell
}

// handlePTY runs a shell (or ?cmd= in the shell) on a new terminal and
// connects it to a websocket: binary messages are terminal bytes both
// ways, text messages are agentapi.PTYControl. Mistakes of the request
// are answered 400 before the upgrade.
func (s *Server) handlePTY(w http.ResponseWriter, r *http.Request) {
	params, e := parsePTYQuery(r.URL.Query())
	if e != nil {
		writeError(w, e)
		return
	}
	env := map[string]string{"TERM": ptyTERM}
	for k, v := range params.env {
		env[k] = v
	}
	ex := agentapi.ExecRequest{Cwd: params.cwd, Env: env, Command: params.cmd}
	if params.cmd == "" {
		ex.Argv = []string{s.ptyShell()}
	}
	if e := validateExecRequest(ex); e != nil {
		writeError(w, e)
		return
	}
	if !ptyHeaderHasToken(r.Header, "Connection", "upgrade") || !ptyHeaderHasToken(r.Header, "Upgrade", "websocket") {
		writeError(w, badRequest("%s is a websocket: send a websocket upgrade request", agentapi.PathPTY))
		return
	}
	spec, e := s.execSpec(ex)
	if e != nil {
		writeError(w, e)
		return
	}
	p, master, e := s.ptyStart(spec, ex, params.cols, params.rows)
	if e != nil {
		writeError(w, e)
		return
	}
	log := s.log.With("pty", p.pid)
	log.Info("pty start", "exec", describe(ex), "cwd", spec.Dir, "cols", params.cols, "rows", params.rows)
	// The key authenticates (no cookies are involved), so the origin check
	// would add nothing but keep browser dashboards on other hosts out.
	ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{InsecureSkipVerify: true})
	if err != nil {
		log.Warn("pty websocket accept", "err", err)
		ptyKillSession(p)
		<-p.exited
		s.ptyFinish(p, master, log)
		return
	}
	exit, gone := s.ptyServe(ws, p, master, log)
	log.Info("pty exit", "exit_code", exit.ExitCode, "signal", exit.Signal, "client_gone", gone)
}

// ptyHeaderHasToken reports whether header name lists token (comma separated,
// any case).
func ptyHeaderHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// ptyStart opens a terminal of the size and starts spec on it, as the
// leader of a new session with the terminal as its controlling terminal.
// It returns the process and the agent's (non-blocking) end.
func (s *Server) ptyStart(spec procSpec, ex agentapi.ExecRequest, cols, rows int) (*process, *os.File, *apiError) {
	internal := func(what string, err error) *apiError {
		return newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, "terminal: %s: %v", what, err)
	}
	if s.procs.isClosed() {
		return nil, nil, newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "%v", errShuttingDown)
	}
	ptm, tty, err := pty.Open()
	if err != nil {
		return nil, nil, internal("open", err)
	}
	defer tty.Close()
	master, err := ptyNonblocking(ptm)
	if err != nil {
		return nil, nil, internal("set up", err)
	}
	if err := ptySetSize(master, cols, rows); err != nil {
		master.Close()
		return nil, nil, internal("set size", err)
	}
	if s.cred != nil {
		// Programs that open /dev/tty (less, sudo, ssh) need it to be the user's.
		if err := tty.Chown(s.user.UID, s.user.GID); err != nil {
			s.log.Warn("pty chown", "tty", tty.Name(), "err", err)
		}
	}
	p, err := startProcessWith(spec, []*os.File{tty, tty, tty}, &syscall.SysProcAttr{
		Setsid: true, Setctty: true, Ctty: 0, Credential: spec.Cred,
	})
	if err != nil {
		master.Close()
		return nil, nil, startError(ex, spec, err)
	}
	abort := func(err error) (*process, *os.File, *apiError) {
		ptyKillSession(p)
		<-p.exited
		_, _ = p.reap()
		master.Close()
		return nil, nil, newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "%v", err)
	}
	if err := s.procs.add(p); err != nil {
		return abort(err)
	}
	if !s.bg.addPTY(p) {
		s.procs.remove(p.id)
		return abort(errShuttingDown)
	}
	return p, master, nil
}

// ptyNonblocking returns a pollable copy of the terminal's agent end, so
// that reads honour deadlines and Close ends a blocked read or write (the
// pty package leaves its file in blocking mode), and closes f.
func ptyNonblocking(f *os.File) (*os.File, error) {
	defer f.Close()
	fd, err := unix.FcntlInt(f.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup %s: %w", f.Name(), err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set %s non-blocking: %w", f.Name(), err)
	}
	return os.NewFile(uintptr(fd), f.Name()), nil
}

// ptySetSize sets the terminal's window size; the kernel then sends
// SIGWINCH to its foreground process group.
func ptySetSize(master *os.File, cols, rows int) error {
	rc, err := master.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	err = rc.Control(func(fd uintptr) {
		ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, &unix.Winsize{Row: uint16(rows), Col: uint16(cols)})
	})
	if err != nil {
		return err
	}
	return ierr
}

// ptyServe copies between the terminal and the websocket until the shell
// exits (then it sends the exit message and closes the websocket) or the
// client goes (then it kills the shell's session). It returns once the
// shell is reaped and both copies have stopped.
func (s *Server) ptyServe(ws *websocket.Conn, p *process, master *os.File, log *slog.Logger) (agentapi.PTYControl, bool) {
	ws.SetReadLimit(ptyReadLimit)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	outDone := make(chan struct{})
	var outBytes atomic.Int64 // read from the terminal so far
	go func() {
		defer close(outDone)
		ptyCopyOut(ctx, ws, master, &outBytes)
	}()
	inDone := make(chan struct{})
	go func() {
		defer close(inDone)
		ptyCopyIn(ctx, ws, master, log)
	}()

	gone := false
	select {
	case <-p.exited:
	case <-inDone:
		gone = true
		ptyKillSession(p)
		<-p.exited
	}
	// Send what the shell wrote before it exited; a daemon it left behind
	// may hold the terminal, so only until no output came for a grace.
	grace := time.NewTimer(s.opts.OutputGrace)
	exitedAt := time.Now()
	for seen := outBytes.Load(); ; {
		select {
		case <-outDone:
		case <-grace.C:
			if n := outBytes.Load(); n != seen && time.Since(exitedAt) < maxDrain {
				seen = n
				grace.Reset(s.opts.OutputGrace)
				continue
			}
			_ = master.SetReadDeadline(time.Now())
			<-outDone
		}
		break
	}
	grace.Stop()
	exit := s.ptyFinish(p, master, log)
	if gone {
		_ = ws.CloseNow()
	} else {
		msg, _ := json.Marshal(exit)
		wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
		if err := ws.Write(wctx, websocket.MessageText, msg); err != nil {
			log.Debug("pty exit message", "err", err)
		}
		wcancel()
		_ = ws.Close(websocket.StatusNormalClosure, "")
	}
	cancel()
	<-inDone
	return exit, gone
}

// ptyFinish reaps the shell, closes the terminal and forgets both.
func (s *Server) ptyFinish(p *process, master *os.File, log *slog.Logger) agentapi.PTYControl {
	exit := agentapi.PTYControl{Type: agentapi.PTYExit, ExitCode: -1}
	st, err := p.reap()
	if err != nil {
		log.Error("pty reap", "err", err)
	} else {
		exit.ExitCode, exit.Signal = exitStatus(st)
	}
	master.Close() // ends a write of ptyCopyIn that the terminal blocks
	s.procs.remove(p.id)
	s.bg.removePTY(p)
	return exit
}

// ptyCopyOut sends what the terminal shows as binary messages, until the
// terminal ends (EIO once no process holds it) or the websocket fails.
func ptyCopyOut(ctx context.Context, ws *websocket.Conn, master *os.File, count *atomic.Int64) {
	buf := make([]byte, readChunk)
	for {
		n, err := master.Read(buf)
		count.Add(int64(n))
		if n > 0 {
			if werr := ws.Write(ctx, websocket.MessageBinary, buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// ptyCopyIn writes binary messages to the terminal and applies resize
// messages, until the websocket ends. A terminal that no longer takes
// input does not end it: only the client or ptyServe does.
func ptyCopyIn(ctx context.Context, ws *websocket.Conn, master *os.File, log *slog.Logger) {
	broken := false
	for {
		typ, data, err := ws.Read(ctx)
		if err != nil {
			return
		}
		switch typ {
		case websocket.MessageBinary:
			if broken {
				continue
			}
			if _, err := master.Write(data); err != nil {
				broken = true
			}
		case websocket.MessageText:
			var c agentapi.PTYControl
			if err := json.Unmarshal(data, &c); err != nil {
				log.Debug("pty: control message is not JSON", "err", err)
				continue
			}
			if c.Type != agentapi.PTYResize {
				log.Debug("pty: unknown control message", "type", c.Type)
				continue
			}
			if c.Cols < 1 || c.Rows < 1 || c.Cols > agentapi.MaxPTYSize || c.Rows > agentapi.MaxPTYSize {
				log.Debug("pty: resize out of range", "cols", c.Cols, "rows", c.Rows)
				continue
			}
			if err := ptySetSize(master, c.Cols, c.Rows); err != nil && !errors.Is(err, os.ErrClosed) {
				log.Debug("pty resize", "err", err)
			}
		}
	}
}

// ptyKillSession SIGKILLs the shell's process group and every other
// process of its session (jobs of an interactive shell get groups of their
// own). Before reap the session id cannot be reused, so this is safe.
func ptyKillSession(p *process) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return
	}
	_ = syscall.Kill(-p.pid, syscall.SIGKILL)
	for _, pid := range ptySessionMembers(p.pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// Fields of a /proc/PID/stat line after its comm, from 0: the state, the
// parent, the process group, the session.
const (
	statState   = 0
	statGroup   = 2
	statSession = 3
)

// ptySessionMembers lists the processes whose session id is sid, from /proc.
func ptySessionMembers(sid int) []int {
	return procMembers(sid, statSession)
}

// groupMembers lists the processes whose process group id is pgid, from
// /proc.
func groupMembers(pgid int) []int {
	return procMembers(pgid, statGroup)
}

// procMembers lists the live (not zombie) processes other than id whose
// /proc/PID/stat field n is id.
func procMembers(id, n int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == id {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		f := procStatFields(data)
		if v, ok := procStatInt(f, n); ok && v == id && f[statState] != "Z" && f[statState] != "X" {
			out = append(out, pid)
		}
	}
	return out
}

// ptyStatSession reads the session id from a /proc/PID/stat line.
func ptyStatSession(stat []byte) (int, bool) { return procStatInt(procStatFields(stat), statSession) }

// procStatFields splits a /proc/PID/stat line, "pid (comm) state ppid pgrp
// session ...", after its comm, which may hold spaces and parentheses;
// nil when the line has none.
func procStatFields(stat []byte) []string {
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return nil
	}
	return strings.Fields(string(stat[i+1:]))
}

// procStatInt reads field n of fields as a number.
func procStatInt(fields []string, n int) (int, bool) {
	if len(fields) <= n {
		return 0, false
	}
	v, err := strconv.Atoi(fields[n])
	return v, err == nil
}
