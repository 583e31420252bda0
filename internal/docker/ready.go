package docker

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/sandbox"
)

const (
	logTailLines = 20
	// Readiness is polled every pollMin for the first pollFast (the agent
	// usually answers 10-30 ms after the start returns, and a refused
	// connection costs microseconds), then with a back-off up to pollMax.
	pollMin  = time.Millisecond
	pollFast = 200 * time.Millisecond
	pollMax  = 50 * time.Millisecond
)

// waitReady returns when the agent at agentURL answers /alive. It fails at
// once if the container stops first, and after timeout otherwise; both
// errors carry the container's exit code and last log lines.
func (r *Runtime) waitReady(ctx context.Context, id, containerID, agentURL, key string, timeout time.Duration, debug bool) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	if debug {
		var wg sync.WaitGroup
		sctx, stop := context.WithCancel(wctx)
		wg.Add(1)
		go func() { defer wg.Done(); r.streamLogs(sctx, id, containerID) }()
		defer func() { stop(); wg.Wait() }() // the stream ends with the wait
	}

	exited := r.engine.ContainerWait(wctx, containerID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	agent := r.agents.get(agentURL, key)
	delay, started := pollMin, time.Now()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case res := <-exited.Result:
			return r.startFailure(containerID, fmt.Sprintf("container exited with code %d before its agent was ready", res.StatusCode))
		case err := <-exited.Error:
			if wctx.Err() == nil {
				return fmt.Errorf("%w: watching container: %v", sandbox.ErrStartFailed, translate(err))
			}
			exited.Error = nil // the deadline: reported below
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return r.startFailure(containerID, fmt.Sprintf("agent at %s did not answer within %s (%v)", agentURL, timeout, sandbox.ErrReadyTimeout))
		case <-timer.C:
			actx, acancel := context.WithTimeout(wctx, time.Second)
			err := agent.Alive(actx)
			acancel()
			if err == nil {
				return nil
			}
			timer.Reset(delay)
			if time.Since(started) > pollFast {
				delay = min(delay*2, pollMax)
			}
		}
	}
}

// startFailure builds the error of a failed start: what happened, the
// container's state and exit code, and the last lines of its logs.
func (r *Runtime) startFailure(containerID, what string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kind := sandbox.ErrStartFailed
	if strings.Contains(what, sandbox.ErrReadyTimeout.Error()) {
		kind = sandbox.ErrReadyTimeout
	}
	var b strings.Builder
	b.WriteString(what)
	if res, err := r.engine.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{}); err == nil && res.Container.State != nil {
		st := res.Container.State
		fmt.Fprintf(&b, "; container state %s, exit code %d", st.Status, st.ExitCode)
		if st.OOMKilled {
			b.WriteString(", killed for lack of memory (OOM)")
		}
		if st.Error != "" {
			fmt.Fprintf(&b, ", engine error: %s", st.Error)
		}
	}
	if tail := r.logTail(ctx, containerID, logTailLines); tail != "" {
		fmt.Fprintf(&b, "\nlast lines of the container's log:\n%s", tail)
	} else {
		b.WriteString("\nthe container logged nothing")
	}
	return fmt.Errorf("%w: %s", kind, b.String())
}

// logTail returns the last n lines of the container's stdout and stderr.
func (r *Runtime) logTail(ctx context.Context, containerID string, n int) string {
	rc, err := r.engine.ContainerLogs(ctx, containerID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: fmt.Sprint(n)})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var out strings.Builder
	if _, err := stdcopy.StdCopy(&out, &out, rc); err != nil && out.Len() == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	for i, l := range lines {
		lines[i] = "  | " + l
	}
	if len(lines) == 1 && lines[0] == "  | " {
		return ""
	}
	return strings.Join(lines, "\n")
}

// streamLogs copies the container's logs, line by line, into the debug log
// (and LogOutput) until ctx ends: the seed's LogStreamer.
func (r *Runtime) streamLogs(ctx context.Context, id, containerID string) {
	rc, err := r.engine.ContainerLogs(ctx, containerID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: true})
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("streaming container logs", "sandbox", id, "err", err)
		}
		return
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		pw.CloseWithError(err)
	}()
	go func() { <-ctx.Done(); rc.Close() }()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		r.log.Debug("container log", "sandbox", id, "line", line)
		if r.opts.LogOutput != nil {
			fmt.Fprintf(r.opts.LogOutput, "[sandbox %s] %s\n", id, line)
		}
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, io.ErrClosedPipe) {
		r.log.Warn("streaming container logs", "sandbox", id, "err", err)
	}
}
