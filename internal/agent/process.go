package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// errShuttingDown refuses new processes once the agent stops.
var errShuttingDown = errors.New("the agent is shutting down")

// procSpec is everything needed to start one process.
type procSpec struct {
	Path  string   // resolved program
	Argv  []string // argv[0] included
	Dir   string
	Env   []string
	Cred  *syscall.Credential // nil: run as the agent's own user
	Stdin []byte              // nil or empty: /dev/null
}

// process is a command the agent started, leading its own process group
// (pgid == pid), so that it and everything it forks can be killed at once.
type process struct {
	id      uint64
	pid     int
	proc    *os.Process
	started time.Time
	// exited is closed once the process has exited. It is not reaped then:
	// until reap, its pid (and so its process group id) cannot be reused,
	// which makes killGroup safe from any goroutine.
	exited chan struct{}

	mu     sync.Mutex
	reaped bool
	state  *os.ProcessState
}

// pipes are the agent's ends of a process's standard streams.
type pipes struct {
	stdin  *os.File // nil when the process reads /dev/null
	stdout *os.File
	stderr *os.File
}

func (p *pipes) closeAll() {
	for _, f := range []*os.File{p.stdin, p.stdout, p.stderr} {
		if f != nil {
			f.Close()
		}
	}
}

// startProcess starts spec in a new process group with fresh pipes.
func startProcess(spec procSpec) (*process, *pipes, error) {
	var (
		child  []*os.File // the child's ends, closed here after the start
		agent  pipes
		ok     bool
		stdinR *os.File
	)
	defer func() {
		for _, f := range child {
			f.Close()
		}
		if !ok {
			agent.closeAll()
		}
	}()

	if len(spec.Stdin) > 0 {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("stdin pipe: %w", err)
		}
		stdinR, agent.stdin = r, w
	} else {
		f, err := os.Open(os.DevNull)
		if err != nil {
			return nil, nil, fmt.Errorf("open %s: %w", os.DevNull, err)
		}
		stdinR = f
	}
	child = append(child, stdinR)
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("stdout pipe: %w", err)
	}
	agent.stdout = outR
	child = append(child, outW)
	errR, errW, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("stderr pipe: %w", err)
	}
	agent.stderr = errR
	child = append(child, errW)

	attr := &os.ProcAttr{
		Dir:   spec.Dir,
		Env:   spec.Env,
		Files: []*os.File{stdinR, outW, errW},
		Sys:   &syscall.SysProcAttr{Setpgid: true, Credential: spec.Cred},
	}
	proc, err := os.StartProcess(spec.Path, spec.Argv, attr)
	if err != nil {
		return nil, nil, err
	}
	ok = true
	p := &process{
		pid:     proc.Pid,
		proc:    proc,
		started: time.Now(),
		exited:  make(chan struct{}),
	}
	go p.awaitExit()
	return p, &agent, nil
}

// awaitExit closes p.exited when the process exits, leaving it a zombie
// until reap. It waits on a pidfd in the runtime's poller, so a waiting
// goroutine holds no OS thread: a thread blocked in waitid(2) per running
// process would count against the sandbox's pids limit, and at that limit
// the Go runtime cannot start the thread it needs and the agent dies.
// Without pidfds (Linux before 5.3) it blocks in waitid.
func (p *process) awaitExit() {
	defer close(p.exited)
	if waitPidfd(p.pid) {
		return
	}
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, p.pid, &info, unix.WEXITED|unix.WNOWAIT, nil)
		if !errors.Is(err, unix.EINTR) {
			return
		}
	}
}

// waitPidfd waits until process pid (a child not yet reaped) has exited,
// through a pidfd the runtime's poller watches. It returns false when it
// cannot (no pidfd support), having waited for nothing.
func waitPidfd(pid int) bool {
	fd, err := unix.PidfdOpen(pid, unix.PIDFD_NONBLOCK)
	if err != nil {
		return false
	}
	f := os.NewFile(uintptr(fd), "pidfd")
	defer f.Close()
	rc, err := f.SyscallConn()
	if err != nil {
		return false
	}
	var werr error
	err = rc.Read(func(fd uintptr) bool {
		for {
			// WNOWAIT: look, do not reap; WNOHANG: the poller waits, not us.
			var info unix.Siginfo
			werr = unix.Waitid(unix.P_PIDFD, int(fd), &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil)
			if errors.Is(werr, unix.EINTR) {
				continue
			}
			return werr != nil || info.Signo != 0 // zero: it has not exited yet
		}
	})
	// ECHILD: it was reaped, nothing to wait for. Another error (no
	// P_PIDFD in this kernel or sandbox runtime): the caller waits the
	// blocking way.
	return err == nil && (werr == nil || errors.Is(werr, unix.ECHILD))
}

// killGroup sends sig to the process's whole group. After reap it does
// nothing: the group id may then belong to someone else.
func (p *process) killGroup(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return nil
	}
	if err := syscall.Kill(-p.pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill process group %d: %w", p.pid, err)
	}
	return nil
}

// reap collects the exit status; call it after exited is closed.
func (p *process) reap() (*os.ProcessState, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.reaped {
		return p.state, nil
	}
	st, err := p.proc.Wait()
	if err != nil {
		return nil, fmt.Errorf("wait for process %d: %w", p.pid, err)
	}
	p.reaped, p.state = true, st
	return st, nil
}

// exitStatus maps a wait status to the exit code a shell would show and
// the name of the signal that killed the process, if any.
func exitStatus(st *os.ProcessState) (code int, signal string) {
	ws, ok := st.Sys().(syscall.WaitStatus)
	if !ok {
		return st.ExitCode(), ""
	}
	if ws.Signaled() {
		return 128 + int(ws.Signal()), unix.SignalName(ws.Signal())
	}
	return ws.ExitStatus(), ""
}

// processTable tracks the running processes, so that all of them can be
// killed on shutdown. Sessions and background processes will keep their
// output here too.
type processTable struct {
	mu     sync.Mutex
	nextID uint64
	procs  map[uint64]*process
	closed bool
	// changed is closed and replaced whenever a process leaves the table.
	changed chan struct{}
}

func newProcessTable() *processTable {
	return &processTable{procs: make(map[uint64]*process), changed: make(chan struct{})}
}

// add registers p and gives it an id. Once the table is closed it refuses:
// the caller must then kill p itself.
func (t *processTable) add(p *process) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return errShuttingDown
	}
	t.nextID++
	p.id = t.nextID
	t.procs[p.id] = p
	return nil
}

func (t *processTable) remove(id uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.procs, id)
	close(t.changed)
	t.changed = make(chan struct{})
}

// waitEmpty returns once no process is tracked, or with ctx's error.
func (t *processTable) waitEmpty(ctx context.Context) error {
	t.mu.Lock()
	for len(t.procs) > 0 {
		ch := t.changed
		t.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d processes: %w", t.count(), ctx.Err())
		}
		t.mu.Lock()
	}
	t.mu.Unlock()
	return nil
}

func (t *processTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.procs)
}

func (t *processTable) isClosed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.closed
}

// closeAndKill refuses new processes from now on and SIGKILLs the group of
// every running one. It returns how many groups it signalled.
func (t *processTable) closeAndKill() int {
	t.mu.Lock()
	t.closed = true
	procs := make([]*process, 0, len(t.procs))
	for _, p := range t.procs {
		procs = append(procs, p)
	}
	t.mu.Unlock()
	for _, p := range procs {
		// Errors here are EPERM at worst; the process is going away anyway.
		_ = p.killGroup(syscall.SIGKILL)
	}
	return len(procs)
}
