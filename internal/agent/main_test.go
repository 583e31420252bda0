package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"go.uber.org/goleak"
	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agentapi"
)

// helperEnv makes the test binary a child program instead of running tests,
// so output tests do not depend on the tools of the machine.
const helperEnv = "AGENT_TEST_HELPER"

func TestMain(m *testing.M) {
	if mode := os.Getenv(helperEnv); mode != "" {
		os.Exit(runHelper(mode))
	}
	goleak.VerifyTestMain(m)
}

// runHelper: "pattern N" writes the first N bytes of pattern to stdout.
func runHelper(mode string) int {
	var n int
	if _, err := fmt.Sscanf(mode, "pattern %d", &n); err != nil {
		fmt.Fprintln(os.Stderr, "bad helper mode:", mode)
		return 2
	}
	w := bufio.NewWriterSize(os.Stdout, 64<<10)
	for i := range n {
		w.WriteByte(patternByte(i))
	}
	if err := w.Flush(); err != nil {
		return 1
	}
	return 0
}

// patternByte is a deterministic sequence that uses every byte value and
// does not repeat with a short period, so a lost, doubled or reordered
// chunk shows.
func patternByte(i int) byte { return byte(i*7 + i/251) }

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = patternByte(i)
	}
	return b
}

// helperArgv runs the test binary as a helper.
func helperArgv(t *testing.T) []string {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return []string{exe}
}

const testKey = "test-key-0123456789"

type testAgent struct {
	srv     *Server
	url     string
	client  *agentapi.Client
	hc      *http.Client // closed with the server
	workdir string
	user    Identity
}

// newTestAgent serves an agent on loopback as the current user (no account
// is created), with a workdir of its own. mod may change the options.
func newTestAgent(t *testing.T, mod func(*Options)) *testAgent {
	t.Helper()
	home := t.TempDir()
	id := Identity{UID: os.Getuid(), GID: os.Getgid(), Name: "tester", Home: home, Shell: "/bin/sh"}
	opts := Options{
		Key:     testKey,
		UserID:  id.UID,
		Workdir: t.TempDir(),
		Logger:  slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		SetupUser: func(context.Context, int) (Identity, error) {
			return id, nil
		},
		Environ: []string{
			"PATH=" + os.Getenv("PATH"),
			"KEEP_ME=kept",
			agentapi.EnvKey + "=" + testKey,
			agentapi.EnvPort + "=8000",
			"BERTH_SOMETHING_ELSE=x",
			"HOME=/wrong",
		},
		OutputGrace: 100 * time.Millisecond,
	}
	if mod != nil {
		mod(&opts)
	}
	s, err := NewServer(t.Context(), opts)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	ts := httptest.NewServer(s.Handler())
	// Cleanups run last-in first-out: kill the processes, then close the
	// server (which waits for the streams to end).
	t.Cleanup(ts.Close)
	t.Cleanup(s.Close)
	return &testAgent{
		srv:     s,
		url:     ts.URL,
		client:  agentapi.New(ts.URL, testKey, ts.Client()),
		hc:      ts.Client(),
		workdir: s.opts.Workdir,
		user:    s.user,
	}
}

// result is everything one exec streamed.
type result struct {
	events []agentapi.ExecEvent
	stdout []byte
	stderr []byte
	exit   agentapi.ExecEvent
}

func (a *testAgent) exec(t *testing.T, req agentapi.ExecRequest) result {
	t.Helper()
	// A hang (say, a pipe never cut off) fails here, not at the binary's timeout.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var r result
	exit, err := a.client.Exec(ctx, req, func(ev agentapi.ExecEvent) error {
		r.events = append(r.events, ev)
		switch ev.Type {
		case agentapi.EventStdout:
			r.stdout = append(r.stdout, ev.Data...)
		case agentapi.EventStderr:
			r.stderr = append(r.stderr, ev.Data...)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("exec %+v: %v", req, err)
	}
	r.exit = exit
	return r
}

// execError runs a request that must fail and returns the agent's error.
func (a *testAgent) execError(t *testing.T, req agentapi.ExecRequest) *agentapi.APIError {
	t.Helper()
	_, err := a.client.Exec(t.Context(), req, nil)
	var ae *agentapi.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("exec %+v: got %v, want an *APIError", req, err)
	}
	return ae
}

// waitProcsDone waits until the agent tracks no running process.
func (a *testAgent) waitProcsDone(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := a.srv.procs.waitEmpty(ctx); err != nil {
		t.Fatal(err)
	}
}

// waitGone waits until process pid has exited (a zombie counts as gone),
// using a pidfd, which becomes readable when the process exits.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	fd, err := unix.PidfdOpen(pid, 0)
	if errors.Is(err, unix.ESRCH) {
		return
	}
	if err != nil {
		t.Fatalf("pidfd_open %d: %v", pid, err)
	}
	defer unix.Close(fd)
	fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	for {
		n, err := unix.Poll(fds, 10_000)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("poll pidfd of %d: %v", pid, err)
		}
		if n == 0 {
			t.Fatalf("process %d is still running after 10s", pid)
		}
		return
	}
}

// alive reports whether pid runs and is not a zombie.
func alive(pid int) bool {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// pid (comm) S ...: the state follows the last ')'.
	for i := len(data) - 1; i >= 0; i-- {
		if data[i] == ')' {
			return i+2 < len(data) && data[i+2] != 'Z' && data[i+2] != 'X'
		}
	}
	return false
}
