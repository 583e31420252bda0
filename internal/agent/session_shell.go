package agent

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agentapi"
)

// How a session runs a command, and why the exit code cannot be spoofed.
//
// The shell (bash, else sh) reads its commands from a pipe only the agent
// writes to (its stdin), and has a pseudo-terminal as controlling terminal,
// stdout and stderr, so that it has job control. For each command the agent
// makes four files in a directory of the session that only it can list:
// "command" holds the command text, and "stdout", "stderr" and "status" are
// named pipes. It then writes two lines to the shell:
//
//	{ \command \. '<dir>/command'; } </dev/tty >'<dir>/stdout' 2>'<dir>/stderr'
//	\command \echo <token> "$?" >'<dir>/status'
//
// The command is sourced, not parsed into the wrapper, so any text works
// (quotes, here-documents, syntax errors) and runs in the shell itself (cd,
// variables, functions and aliases persist). Its stdin is the terminal, so
// input, Ctrl-C, Ctrl-D and Ctrl-Z reach it as on a terminal; its stdout and
// stderr are pipes of its own, read to end of file, so a call gets only its
// command's output. The status line goes to a third pipe that the command's
// output never reaches, and counts only if it starts with the random token
// of this command, which is in no file, argument, variable or output the
// command can see. Text that looks like a status line in the output is
// just output. "\command" and "\echo" are quoted so aliases cannot replace
// them; command also keeps a syntax error in the text from ending a POSIX
// shell. The status line is a line of its own because bash drops the rest
// of a line when Ctrl-C kills its foreground job. The "-" line says the
// shell has begun the command: input waits for it, so that a Ctrl-C sent
// right after the exec reaches the command, not the shell still reading
// its next line.

// sessionInit is written to a new shell before its first command. Job
// control makes each job a process group of its own that owns the terminal
// while it runs, so Ctrl-C and Ctrl-Z reach the job and not the shell.
// The INT trap keeps the shell alive when Ctrl-C arrives while it runs a
// builtin (read, wait); in bash it also ends the sourced command, with 130.
const sessionInit = `set -m
if [ -n "${BASH_VERSION-}" ]; then trap 'return 130 2>/dev/null' INT; shopt -s expand_aliases; else trap : INT; fi
`

// sessionStartTimeout bounds a new shell's first answer.
const sessionStartTimeout = 10 * time.Second

// sessionSpec is a session's shell, resolved and checked.
type sessionSpec struct {
	opts  agentapi.SessionOptions // as asked: a restart starts from these
	shell string
	argv  []string
	dir   string
	env   []string
	asked bool // the caller named the shell: a failing shell is its mistake
}

// session is one persistent shell.
type session struct {
	t       *sessionTable
	name    string
	spec    sessionSpec
	log     *slog.Logger
	created time.Time
	dir     string // its command files

	ready    chan struct{} // closed once start has returned
	startErr *apiError

	shell *process
	ctl   *os.File // the shell's stdin
	tty   *sessionTTY
	dead  chan struct{} // closed once the shell has exited and been reaped

	ttyMu  sync.Mutex
	router ttyRouter

	mu       sync.Mutex
	exited   bool        // the shell has exited
	exitInfo sessionExit // its status, once exited
	killed   bool
	cur      *sessionCmd   // the running command, or the last one
	curDone  chan struct{} // closed when cur's supervisor ends
	attached bool          // a call streams cur
}

// isDead reports whether the shell has exited. It takes no lock.
func (s *session) isDead() bool {
	select {
	case <-s.dead:
		return true
	default:
		return false
	}
}

// resolveSpec checks options against the sandbox.
func (t *sessionTable) resolveSpec(opts agentapi.SessionOptions) (sessionSpec, *apiError) {
	srv := t.srv
	spec := sessionSpec{opts: opts, shell: srv.shell}
	dir, err := resolveCwd(srv.opts.Workdir, opts.Cwd)
	if err != nil {
		return spec, badRequest("%v", err)
	}
	if err := checkDir(dir); err != nil {
		return spec, badRequest("%v", err)
	}
	spec.dir = dir
	spec.env = mergeEnv(*srv.baseEnv.Load(), opts.Env)
	if opts.Shell != "" {
		p, err := lookPath(opts.Shell, envValue(spec.env, "PATH"), dir)
		if err != nil {
			return spec, badRequest(`"shell": %v`, err)
		}
		spec.shell, spec.asked = p, true
	}
	spec.argv = []string{spec.shell}
	if filepath.Base(spec.shell) == "bash" {
		// -m at start, not set -m later: only then does bash keep its own
		// handle on the terminal rather than use fd 2, which each command
		// redirects.
		spec.argv = append(spec.argv, "--noprofile", "--norc", "-m")
	}
	return spec, nil
}

// start starts the shell and waits for its first answer.
func (s *session) start() *apiError {
	srv := s.t.srv
	dir, err := s.t.sessionDir(s.name)
	if err != nil {
		return internalError("session %q: %v", s.name, err)
	}
	s.dir = dir
	tty, err := openSessionTTY()
	if err != nil {
		return internalError("session %q: %v", s.name, err)
	}
	if srv.cred != nil {
		if err := os.Chown(tty.path, srv.user.UID, srv.user.GID); err != nil {
			tty.close()
			return internalError("session %q: give the terminal to the user: %v", s.name, err)
		}
	}
	child, err := tty.openChild()
	if err != nil {
		tty.close()
		return internalError("session %q: %v", s.name, err)
	}
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		child.Close()
		tty.close()
		return internalError("session %q: pipe: %v", s.name, err)
	}
	proc, err := os.StartProcess(s.spec.shell, s.spec.argv, &os.ProcAttr{
		Dir:   s.spec.dir,
		Env:   s.spec.env,
		Files: []*os.File{ctlR, child, child},
		Sys: &syscall.SysProcAttr{
			Setsid: true, Setctty: true, Ctty: 1,
			Credential: srv.cred,
		},
	})
	ctlR.Close()
	child.Close()
	if err != nil {
		ctlW.Close()
		tty.close()
		return s.startFailed(fmt.Sprintf("cannot start shell %s: %v", s.spec.shell, unwrapPath(err)))
	}
	s.shell = &process{pid: proc.Pid, proc: proc, started: time.Now(), exited: make(chan struct{})}
	go s.shell.awaitExit()
	s.ctl, s.tty = ctlW, tty
	s.log = s.log.With("pid", proc.Pid)
	if !s.t.goAdd(2) {
		s.abort()
		return newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "%v", errShuttingDown)
	}
	go s.watch()
	go s.readTTY()

	// The first command, ":", proves the shell reads and answers; whatever
	// the shell says before it (a rc file, an error) is its output.
	probe := newSessionCmd(":", 64<<10)
	s.mu.Lock()
	e := s.launch(probe, sessionInit)
	s.mu.Unlock()
	if e != nil {
		s.kill()
		return e
	}
	if !probe.wait(sessionStartTimeout) {
		s.kill()
		return internalError("session %q: shell %s did not answer within %s", s.name, s.spec.shell, sessionStartTimeout)
	}
	s.mu.Lock()
	s.cur = nil // nobody reads the probe's result
	s.mu.Unlock()
	var out bytes.Buffer
	chunks, _, _ := probe.take()
	for _, c := range chunks {
		out.Write(c.data)
	}
	if ex, _ := probe.result(); ex.shellExited {
		s.kill()
		msg := fmt.Sprintf("shell %s exited at start (%s)", s.spec.shell, describeExit(ex))
		if out.Len() > 0 {
			msg += ": " + strings.TrimSpace(out.String())
		}
		return s.startFailed(msg)
	}
	if out.Len() > 0 {
		s.log.Warn("session shell said something at start", "output", truncate(out.String(), 500))
	}
	s.log.Info("session started", "shell", s.spec.shell, "cwd", s.spec.dir)
	return nil
}

// startFailed is a 400 when the caller chose the shell, else a 500.
func (s *session) startFailed(msg string) *apiError {
	if s.spec.asked {
		return badRequest("session %q: %s", s.name, msg)
	}
	return internalError("session %q: %s", s.name, msg)
}

// abort kills and reaps a shell whose goroutines never started.
func (s *session) abort() {
	_ = s.shell.killGroup(syscall.SIGKILL)
	<-s.shell.exited
	_, _ = s.shell.reap()
	s.ctl.Close()
	s.tty.close()
	close(s.dead)
}

func describeExit(ex sessionExit) string {
	if ex.signal != "" {
		return "killed by " + ex.signal
	}
	return "exit code " + strconv.Itoa(ex.code)
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "…"
	}
	return s
}

func internalError(format string, args ...any) *apiError {
	return newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, format, args...)
}

// watch reaps the shell when it exits, ends its session like a terminal
// that hangs up, and closes the terminal once the last command is done
// with it.
func (s *session) watch() {
	defer s.t.wg.Done()
	<-s.shell.exited
	st, err := s.shell.reap()
	ex := sessionExit{shellExited: true, code: -1}
	if err != nil {
		s.log.Error("session reap", "err", err)
	} else {
		ex.code, ex.signal = exitStatus(st)
	}
	s.mu.Lock()
	s.exited, s.exitInfo = true, ex
	done, killed := s.curDone, s.killed
	s.mu.Unlock()
	close(s.dead)
	s.log.Info("session shell exited", "exit_code", ex.code, "signal", ex.signal, "killed", killed)
	// SIGHUP as a terminal's hangup: background jobs end, nohup'd ones
	// live on. SIGCONT wakes stopped jobs so that they see it.
	signalSession(s.shell.pid, syscall.SIGHUP, syscall.SIGCONT)
	s.ctl.Close()
	if done != nil {
		<-done // the last command has taken its share of the terminal
	}
	s.ttyMu.Lock()
	s.tty.close()
	s.router = ttyRouter{}
	s.ttyMu.Unlock()
}

// shellExit is the shell's status; valid once dead is closed.
func (s *session) shellExit() sessionExit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.exitInfo
}

// kill kills every process of the session and waits for the shell.
func (s *session) kill() {
	s.mu.Lock()
	s.killed = true
	s.mu.Unlock()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		_ = s.shell.killGroup(syscall.SIGKILL)
		if signalSession(s.shell.pid, syscall.SIGKILL) == 0 {
			break
		}
		// Processes of the session may fork while they are being killed:
		// look again once the signals have landed.
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-s.dead:
	case <-time.After(time.Until(deadline)):
		s.log.Error("session shell did not die after SIGKILL")
	}
}

// errSessionGone: the shell exited or the session was deleted meanwhile.
var errSessionGone = errors.New("the session's shell has exited")

// exec starts text as the session's command, with the caller attached.
// Called without s.mu.
func (s *session) exec(text string, maxOut int64) (*sessionCmd, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exited || s.killed {
		return nil, newAPIError(http.StatusConflict, agentapi.CodeBusy, "session %q: %v", s.name, errSessionGone)
	}
	if e := s.busyLocked(); e != nil {
		return nil, e
	}
	c := newSessionCmd(text, maxOut)
	if e := s.launch(c, ""); e != nil {
		return nil, e
	}
	s.attached = true
	return c, nil
}

// busyLocked refuses a new command while one runs or a call streams.
func (s *session) busyLocked() *apiError {
	if s.cur != nil && !s.cur.isFinished() {
		return newAPIError(http.StatusConflict, agentapi.CodeBusy,
			"session %q is busy: %s has been running for %s; it was not started. "+
				"Read more output (GET %s, or exec with an empty command), send input or a control "+
				`(POST %s, {"control":"C-c"} interrupts it), or delete the session`,
			s.name, describeText(s.cur.text), time.Since(s.cur.started).Round(time.Millisecond),
			agentapi.SessionPath(agentapi.PathSessionOutput, s.name), agentapi.SessionPath(agentapi.PathSessionInput, s.name))
	}
	if s.attached {
		return newAPIError(http.StatusConflict, agentapi.CodeBusy,
			"session %q is busy: another call is streaming its output; wait for that call to end", s.name)
	}
	return nil
}

// attach lets a call stream the current command: the running one, or the
// last one until its result has been read (unless running is set).
func (s *session) attach(running bool) (*sessionCmd, *apiError) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.cur
	if c == nil || c.isDelivered() || (running && c.isFinished()) {
		msg := fmt.Sprintf("no command is running in session %q", s.name)
		if c != nil {
			if ex, ok := c.result(); ok {
				msg += fmt.Sprintf("; the last one, %s, ended with %s", describeText(c.text), describeExit(ex))
			}
		}
		if s.exited {
			msg += "; its shell has exited, and the next exec starts a new one"
		}
		return nil, newAPIError(http.StatusConflict, agentapi.CodeIdle, "%s", msg)
	}
	if s.attached {
		return nil, newAPIError(http.StatusConflict, agentapi.CodeBusy,
			"session %q is busy: another call is streaming its output; wait for that call to end", s.name)
	}
	s.attached = true
	return c, nil
}

func (s *session) detach() {
	s.mu.Lock()
	s.attached = false
	s.mu.Unlock()
}

// launch makes c's files, starts its supervisor and sends it to the shell,
// after preamble. Called with s.mu held.
func (s *session) launch(c *sessionCmd, preamble string) *apiError {
	if !s.t.goAdd(1) {
		return newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "%v", errShuttingDown)
	}
	f, err := s.makeFiles(c)
	if err != nil {
		s.t.wg.Done()
		return internalError("session %q: %v", s.name, err)
	}
	// While a command runs it counts as a running process of the agent:
	// the sandbox is not idle, and shutdown waits for it.
	if err := s.t.srv.procs.add(s.shell); err != nil {
		f.closeAll()
		s.t.wg.Done()
		return newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "%v", err)
	}
	if err := s.tty.reset(); err != nil {
		s.log.Debug("session terminal reset", "err", err)
	}
	s.ttyMu.Lock()
	s.router = ttyRouter{target: c}
	s.ttyMu.Unlock()
	done := make(chan struct{})
	s.cur, s.curDone = c, done
	go s.supervise(c, f, done)

	q := func(name string) string { return agentapi.ShellQuote(filepath.Join(s.dir, name)) }
	line := preamble +
		`{ \command \echo ` + c.token + ` - >` + q(fileStatus) + `; \command \. ` + q(fileCommand) + `; } </dev/tty >` +
		q(fileStdout) + ` 2>` + q(fileStderr) + "\n" +
		`\command \echo ` + c.token + ` "$?" >` + q(fileStatus) + "\n"
	_ = s.ctl.SetWriteDeadline(time.Now().Add(sessionStartTimeout))
	if _, err := s.ctl.Write([]byte(line)); err != nil {
		// The shell is gone (its death ends c) or does not read its input.
		s.log.Warn("session: cannot send the command to the shell", "err", err)
	}
	return nil
}

// Names of a command's files in the session's directory.
const (
	fileCommand = "command"
	fileStdout  = "stdout"
	fileStderr  = "stderr"
	fileStatus  = "status"
)

// makeFiles writes c's text and makes its named pipes, owned by the user,
// and opens the agent's ends.
func (s *session) makeFiles(c *sessionCmd) (*cmdFiles, error) {
	srv := s.t.srv
	// The directory may have been removed (rm -rf /tmp/*): make it again.
	if err := os.MkdirAll(s.dir, 0o711); err != nil {
		return nil, fmt.Errorf("command directory: %w", err)
	}
	chown := func(p string) error {
		if srv.cred == nil {
			return nil
		}
		return os.Lchown(p, srv.user.UID, srv.user.GID)
	}
	path := func(name string) string { return filepath.Join(s.dir, name) }
	for _, name := range []string{fileCommand, fileStdout, fileStderr, fileStatus} {
		if err := os.Remove(path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("remove old %s: %w", name, err)
		}
	}
	text := c.text
	if !strings.HasSuffix(text, "\n") {
		text += "\n" // a here-document may end on the last line
	}
	cf, err := os.OpenFile(path(fileCommand), os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("command file: %w", err)
	}
	_, err = cf.WriteString(text)
	if cerr := cf.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = chown(path(fileCommand))
	}
	if err != nil {
		return nil, fmt.Errorf("command file: %w", err)
	}
	f := &cmdFiles{}
	ok := false
	defer func() {
		if !ok {
			f.closeAll()
		}
	}()
	for _, p := range []struct {
		name string
		r, w **os.File
	}{
		{fileStdout, &f.stdout, &f.stdoutW},
		{fileStderr, &f.stderr, &f.stderrW},
		{fileStatus, &f.status, &f.statusW},
	} {
		if err := unix.Mkfifo(path(p.name), 0o600); err != nil {
			return nil, fmt.Errorf("make pipe %s: %w", p.name, err)
		}
		if err := chown(path(p.name)); err != nil {
			return nil, fmt.Errorf("pipe %s: %w", p.name, err)
		}
		// Non-blocking opens: the read end first, then the write end,
		// which needs a reader.
		if *p.r, err = os.OpenFile(path(p.name), os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
			return nil, fmt.Errorf("open pipe %s: %w", p.name, err)
		}
		if *p.w, err = os.OpenFile(path(p.name), os.O_WRONLY|syscall.O_NONBLOCK, 0); err != nil {
			return nil, fmt.Errorf("open pipe %s: %w", p.name, err)
		}
	}
	ok = true
	return f, nil
}

// commandEnded undoes what launch did, before c is marked finished (a next
// command may start right after that and make its own files).
func (s *session) commandEnded(c *sessionCmd) {
	s.t.srv.procs.remove(s.shell.id)
	s.ttyMu.Lock()
	if s.router.target == c {
		s.router = ttyRouter{}
	}
	s.ttyMu.Unlock()
	for _, name := range []string{fileCommand, fileStdout, fileStderr, fileStatus} {
		_ = os.Remove(filepath.Join(s.dir, name))
	}
}

// cwd is the shell's working directory, "" once it has exited.
func (s *session) cwd() string {
	if s.isDead() {
		return ""
	}
	// As the user: reading another process's cwd is a ptrace-mode check
	// made with the file system uid, and the agent's root lacks
	// CAP_SYS_PTRACE (it was always "" in a real sandbox).
	var d string
	err := s.t.srv.asUser(func() error {
		var err error
		d, err = os.Readlink("/proc/" + strconv.Itoa(s.shell.pid) + "/cwd")
		return err
	})
	if err != nil {
		return ""
	}
	return d
}

// randomToken is 128 random bits in hex.
func randomToken(upper bool) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails on Linux
	s := hex.EncodeToString(b)
	if upper {
		s = strings.ToUpper(s)
	}
	return s
}

// signalSession sends sigs, in order, to every live process of the session
// sid, and returns how many it found. Processes that left the session
// (setsid) are not touched, as a terminal would not touch them.
func signalSession(sid int, sigs ...syscall.Signal) int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		data, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		state, procSid, ok := parseStat(data)
		if !ok || procSid != sid || state == 'Z' || state == 'X' {
			continue
		}
		n++
		for _, sig := range sigs {
			_ = syscall.Kill(pid, sig)
		}
	}
	return n
}

// parseStat reads the state and session id from /proc/PID/stat:
// "pid (comm) state ppid pgrp session ...", where comm may hold anything.
func parseStat(data []byte) (state byte, sid int, ok bool) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, false
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 4 || len(f[0]) != 1 {
		return 0, 0, false
	}
	sid, err := strconv.Atoi(f[3])
	if err != nil {
		return 0, 0, false
	}
	return f[0][0], sid, true
}
