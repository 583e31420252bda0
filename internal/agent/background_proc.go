package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// startProcessWith starts spec with files as the child's descriptors 0, 1,
// 2… and sys as its attributes, and watches for its exit as startProcess
// does (the process stays a zombie until reap). The caller closes the
// child's ends of files.
func startProcessWith(spec procSpec, files []*os.File, sys *syscall.SysProcAttr) (*process, error) {
	proc, err := os.StartProcess(spec.Path, spec.Argv, &os.ProcAttr{
		Dir:   spec.Dir,
		Env:   spec.Env,
		Files: files,
		Sys:   sys,
	})
	if err != nil {
		return nil, err
	}
	p := &process{
		pid:     proc.Pid,
		proc:    proc,
		started: time.Now(),
		exited:  make(chan struct{}),
	}
	go p.awaitExit()
	return p, nil
}

// bgPipes makes the three pipes of a background process: the child's ends
// (stdin to read, stdout and stderr to write) and the agent's.
func bgPipes() (child, agent [3]*os.File, err error) {
	closeAll := func() {
		for _, f := range append(child[:], agent[:]...) {
			if f != nil {
				f.Close()
			}
		}
	}
	if child[0], agent[0], err = os.Pipe(); err != nil {
		return child, agent, fmt.Errorf("stdin pipe: %w", err)
	}
	if agent[1], child[1], err = os.Pipe(); err != nil {
		closeAll()
		return child, agent, fmt.Errorf("stdout pipe: %w", err)
	}
	if agent[2], child[2], err = os.Pipe(); err != nil {
		closeAll()
		return child, agent, fmt.Errorf("stderr pipe: %w", err)
	}
	return child, agent, nil
}

// bgProc is one background process: its process, its stdin, and the
// output the agent keeps.
type bgProc struct {
	seq   uint64
	id    string
	name  string
	req   agentapi.ProcessRequest
	cwd   string
	p     *process
	limit int64

	stdin *os.File
	// stdinLock lets one writer at a time at stdin; a channel, so that
	// waiting for it ends with the request.
	stdinLock chan struct{}
	stdinEOF  bool // an earlier request closed stdin; guarded by stdinLock

	// done is closed once the process has exited, been reaped, and all its
	// output is in out.
	done chan struct{}

	mu sync.Mutex
	// out is the kept output. Readers may keep the events of a read after
	// unlocking: written bytes never change.
	out *bgOutput
	// changed is closed and replaced on new output and on exit.
	changed  chan struct{}
	exited   bool
	exitCode int
	signal   string
	ended    time.Time
}

func (bp *bgProc) isDone() bool {
	select {
	case <-bp.done:
		return true
	default:
		return false
	}
}

// write keeps output of stream and wakes followers.
func (bp *bgProc) write(stream string, data []byte) {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	bp.out.write(stream, data)
	close(bp.changed)
	bp.changed = make(chan struct{})
}

// finish records the exit and wakes followers and waiters.
func (bp *bgProc) finish(code int, signal string, ended time.Time) {
	bp.mu.Lock()
	bp.exited, bp.exitCode, bp.signal, bp.ended = true, code, signal, ended
	close(bp.changed)
	bp.changed = make(chan struct{})
	bp.mu.Unlock()
	close(bp.done)
}

func (bp *bgProc) info() agentapi.ProcessInfo {
	bp.mu.Lock()
	defer bp.mu.Unlock()
	return bp.infoLocked()
}

func (bp *bgProc) infoLocked() agentapi.ProcessInfo {
	in := agentapi.ProcessInfo{
		ID:           bp.id,
		Name:         bp.name,
		PID:          bp.p.pid,
		Argv:         bp.req.Argv,
		Command:      bp.req.Command,
		Cwd:          bp.cwd,
		State:        agentapi.ProcessRunning,
		Started:      bp.p.started,
		OutputBytes:  bp.out.end,
		DroppedBytes: bp.out.start,
		BufferBytes:  bp.limit,
	}
	if bp.exited {
		in.State, in.ExitCode, in.Signal, in.Ended = agentapi.ProcessExited, bp.exitCode, bp.signal, bp.ended
	}
	return in
}

// writeStdin writes req.Data to the process's stdin, then closes it when
// req.EOF. Writers take turns; a write that blocks (the process does not
// read) lasts as long as ctx.
func (bp *bgProc) writeStdin(ctx context.Context, req agentapi.StdinRequest) (int, *apiError) {
	select {
	case bp.stdinLock <- struct{}{}:
	case <-ctx.Done():
		return 0, bgClientGone(ctx)
	}
	defer func() { <-bp.stdinLock }()
	if bp.stdinEOF {
		return 0, newAPIError(http.StatusConflict, agentapi.CodeConflict,
			`stdin of process %s is closed: an earlier request sent "eof"`, bp.id)
	}
	if bp.isDone() {
		return 0, bgExitedError(bp, "its stdin is closed")
	}
	n := 0
	if len(req.Data) > 0 {
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			_ = bp.stdin.SetWriteDeadline(time.Now())
			close(fired)
		})
		var err error
		n, err = bp.stdin.Write(req.Data)
		if !stop() {
			<-fired
			_ = bp.stdin.SetWriteDeadline(time.Time{})
		}
		switch {
		case err == nil:
		case errors.Is(err, os.ErrDeadlineExceeded):
			return n, bgClientGone(ctx)
		case errors.Is(err, os.ErrClosed):
			return n, bgExitedError(bp, "its stdin is closed")
		case errors.Is(err, syscall.EPIPE):
			return n, newAPIError(http.StatusConflict, agentapi.CodeConflict,
				"process %s closed its stdin; %d of %d bytes were written", bp.id, n, len(req.Data))
		default:
			return n, newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, "write stdin of process %s: %v", bp.id, err)
		}
	}
	if req.EOF {
		bp.stdinEOF = true
		if err := bp.stdin.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
			return n, newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, "close stdin of process %s: %v", bp.id, err)
		}
	}
	return n, nil
}

// bgExitedError is the 409 of a request that needs a running process.
func bgExitedError(bp *bgProc, why string) *apiError {
	return newAPIError(http.StatusConflict, agentapi.CodeConflict, "process %s has exited; %s", bp.id, why)
}

// bgClientGone is the answer when the request's context ended first; the
// client is gone, so it is never read.
func bgClientGone(ctx context.Context) *apiError {
	return newAPIError(http.StatusServiceUnavailable, agentapi.CodeUnavailable, "request ended: %v", context.Cause(ctx))
}

// watch keeps the output of bp until both pipes end (or, after the process
// exits, for the output grace at most, as exec does), then reaps it and
// records its exit.
func (t *bgTable) watch(bp *bgProc, stdout, stderr *os.File) {
	defer t.wg.Done()
	log := t.s.log.With("process", bp.id, "pid", bp.p.pid)
	chunks := make(chan chunk, 4)
	go readPipe(stdout, agentapi.EventStdout, chunks)
	go readPipe(stderr, agentapi.EventStderr, chunks)
	var (
		exited = bp.p.exited
		grace  <-chan time.Time
		open   = 2
		ended  time.Time
	)
	for open > 0 || exited != nil {
		select {
		case c := <-chunks:
			if c.eof {
				open--
				continue
			}
			bp.write(c.typ, c.data)
		case <-exited:
			exited = nil
			ended = time.Now()
			// A daemon forked by the process may hold the pipes forever.
			tm := time.NewTimer(t.s.opts.OutputGrace)
			defer tm.Stop()
			grace = tm.C
		case <-grace:
			grace = nil
			now := time.Now()
			_ = stdout.SetReadDeadline(now)
			_ = stderr.SetReadDeadline(now)
		}
	}
	stdout.Close()
	stderr.Close()
	bp.stdin.Close() // a writer blocked on it gets os.ErrClosed
	code, signal := -1, ""
	st, err := bp.p.reap()
	if err != nil {
		log.Error("background process reap", "err", err)
	} else {
		code, signal = exitStatus(st)
	}
	t.s.procs.remove(bp.p.id)
	bp.finish(code, signal, ended)
	t.noteExited(bp)
	log.Info("background process exit", "exit_code", code, "signal", signal,
		"duration_ms", ended.Sub(bp.p.started).Milliseconds())
}
