package e2e

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/dockertest"
)

// procClient is a client of b's agent with a transport of its own, so that
// closing it really closes its connections.
func procClient(b *box) (*agentapi.Client, *http.Transport) {
	tr := &http.Transport{}
	return agentapi.New(b.AgentURL, b.Key, &http.Client{Transport: tr}), tr
}

// procWaitGone waits, inside the container, until pid no longer exists
// (exited and reaped: a zombie still has its /proc entry).
func (b *box) procWaitGone(t *testing.T, pid int) {
	t.Helper()
	p := strconv.Itoa(pid)
	if out, code := b.sh(t, `timeout 10 sh -c 'while [ -e /proc/`+p+` ]; do sleep 0.02; done' || grep State /proc/`+p+`/status`); code != 0 {
		t.Fatalf("process %d still exists after 10s: %s", pid, out)
	}
}

func TestBackgroundReattachInContainer(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	first, firstTr := procClient(b)
	info, err := first.StartProcess(ctx, agentapi.ProcessRequest{
		Command: `for i in $(seq 1 5); do echo $i; sleep 0.2; done; id -un >&2`,
		Name:    "count",
	})
	if err != nil {
		t.Fatal(err)
	}
	firstTr.CloseIdleConnections()

	// A new client, knowing only the id, reads from offset 0 and follows.
	second, secondTr := procClient(b)
	defer secondTr.CloseIdleConnections()
	var stdout, stderr bytes.Buffer
	end, err := second.ProcessOutput(ctx, info.ID, 0, true, func(ev agentapi.OutputEvent) error {
		switch ev.Type {
		case agentapi.OutputStdout:
			stdout.Write(ev.Data)
		case agentapi.OutputStderr:
			stderr.Write(ev.Data)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if stdout.String() != "1\n2\n3\n4\n5\n" || stderr.String() != "berth\n" {
		t.Errorf("stdout %q stderr %q", stdout.String(), stderr.String())
	}
	if end.Process.State != agentapi.ProcessExited || end.Process.ExitCode != 0 || end.NextOffset != 16 {
		t.Errorf("end %+v", end)
	}
	// Reading again from the end gives nothing more.
	again, err := second.ProcessOutput(ctx, "count", end.NextOffset, false, nil)
	if err != nil || len(again.Chunks) != 0 || again.NextOffset != end.NextOffset {
		t.Errorf("from the end: %+v %v", again, err)
	}
}

func TestBackgroundOutlivesClientInContainer(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	first, firstTr := procClient(b)
	startCtx, startCancel := context.WithCancel(ctx)
	info, err := first.StartProcess(startCtx, agentapi.ProcessRequest{Command: "echo up; exec sleep 1000", Name: "long"})
	if err != nil {
		t.Fatal(err)
	}
	startCancel()
	firstTr.CloseIdleConnections()

	// The one-shot exec of a later call proves the process (a sibling in
	// the container) still runs, as the sandbox user.
	p := strconv.Itoa(info.PID)
	if out, code := b.sh(t, `kill -0 `+p+` && stat -c %U /proc/`+p); code != 0 || out != "berth\n" {
		t.Errorf("after the client went: %q (exit %d)", out, code)
	}
	got, err := b.agent.Process(ctx, "long")
	if err != nil || !got.Running() || got.PID != info.PID {
		t.Errorf("process %+v %v", got, err)
	}
	if _, err := b.agent.SignalProcess(ctx, "long", "TERM"); err != nil {
		t.Fatal(err)
	}
	end, err := b.agent.WaitProcess(ctx, info.ID, 0)
	if err != nil || end.Signal != "SIGTERM" || end.ExitCode != 143 {
		t.Errorf("after TERM: %+v %v", end, err)
	}
	b.procWaitGone(t, info.PID)
	if _, err := b.agent.RemoveProcess(ctx, info.ID); err != nil {
		t.Fatal(err)
	}
}

// The agent reaps its background processes, and Docker's init the
// children they leave behind: nothing stays a zombie.
func TestBackgroundNoZombiesInContainer(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	info, err := b.agent.StartProcess(ctx, agentapi.ProcessRequest{Command: "sleep 0.3 > /dev/null 2>&1 & echo $!; sh -c 'exit 0' & wait $!"})
	if err != nil {
		t.Fatal(err)
	}
	end, err := b.agent.WaitProcess(ctx, info.ID, 0)
	if err != nil || end.ExitCode != 0 {
		t.Fatalf("wait: %+v %v", end, err)
	}
	out, err := b.agent.ProcessOutput(ctx, info.ID, 0, false, nil)
	if err != nil || len(out.Chunks) == 0 {
		t.Fatalf("output %+v %v", out, err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(string(out.Chunks[0].Data)))
	if err != nil {
		t.Fatalf("child pid %q", out.Chunks[0].Data)
	}
	b.procWaitGone(t, info.PID)
	b.procWaitGone(t, child)
	if zombies, _ := b.sh(t, `cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == "Z"' | wc -l`); zombies != "0\n" {
		t.Errorf("zombies: %q", zombies)
	}
}

func TestBackgroundStdinInContainer(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	info, err := b.agent.StartProcess(ctx, agentapi.ProcessRequest{Argv: []string{"tr", "a-z", "A-Z"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.agent.WriteStdin(ctx, info.ID, []byte("shout\n"), true); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	end, err := b.agent.ProcessOutput(ctx, info.ID, 0, true, func(ev agentapi.OutputEvent) error {
		got.Write(ev.Data)
		return nil
	})
	if err != nil || got.String() != "SHOUT\n" || end.Process.ExitCode != 0 {
		t.Errorf("got %q, end %+v, %v", got.String(), end, err)
	}
}
