package docker

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

func run(t *testing.T, h *harness, sb sandbox.Sandbox, argv ...string) (string, int) {
	t.Helper()
	agent := agentapi.New(sb.AgentURL, sb.Key, h.rt.HTTPClient())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stdout, stderr, exit, err := agent.ExecOutput(ctx, agentapi.ExecRequest{Argv: argv})
	if err != nil {
		t.Fatalf("exec %v: %v", argv, err)
	}
	return string(stdout) + string(stderr), exit.ExitCode
}

func TestLifecycle(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	s := spec(t)
	s.Name = "life-" + env.RunID
	s.Env = map[string]string{"GREETING": "hello sandbox"}
	s.Labels["team"] = "core"
	sb := h.create(t, s)

	if sb.Status != sandbox.StatusRunning || sb.State != "running" {
		t.Fatalf("after create: status %s state %s, want RUNNING running", sb.Status, sb.State)
	}
	if sb.Labels["team"] != "core" || sb.Labels[sandbox.LabelID] != "" {
		t.Errorf("labels = %v: want the caller's labels only", sb.Labels)
	}
	if sb.Key == "" || len(sb.Ports) != 1 || sb.Ports[0].HostIP != "127.0.0.1" || sb.URLs["agent"] == "" {
		t.Errorf("record: key set %v, ports %+v, urls %v", sb.Key != "", sb.Ports, sb.URLs)
	}
	// On a local engine berth reaches the agent through its socket; the
	// published port answers all the same.
	if !strings.HasPrefix(sb.AgentURL, "unix://") {
		t.Errorf("agent reached at %q, want its unix socket", sb.AgentURL)
	}
	if got := httpGet(t, sb.URLs["agent"]+"/alive"); !strings.Contains(got, "ok") {
		t.Errorf("GET %s/alive: %q", sb.URLs["agent"], got)
	}
	if !strings.HasPrefix(sb.RuntimeImage, "berth-runtime:") || sb.Image != s.Image.Base {
		t.Errorf("images: %q from %q", sb.RuntimeImage, sb.Image)
	}

	// Every way to name it finds it.
	for _, ref := range []string{sb.ID, sb.ID[:6], s.Name} {
		got, err := h.rt.Get(ctx, ref)
		if err != nil || got.ID != sb.ID {
			t.Errorf("Get(%q) = %s, %v; want %s", ref, got.ID, err, sb.ID)
		}
	}
	if _, err := h.rt.Get(ctx, "no-such-sandbox"); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	// The name is unique.
	dup := spec(t)
	dup.Name = s.Name
	if _, err := h.rt.Create(ctx, dup); !errors.Is(err, sandbox.ErrConflict) {
		t.Errorf("create with a taken name = %v, want ErrConflict", err)
	}

	// Commands run as the sandbox user, in /workspace, with the env given,
	// and never see the agent's key.
	out, code := run(t, h, sb, "sh", "-c", `id -u; pwd; echo "$GREETING"; env | grep -c BERTH_ || true`)
	if code != 0 || out != "1000\n/workspace\nhello sandbox\n0\n" {
		t.Errorf("exec output %q (exit %d)", out, code)
	}
	if _, code := run(t, h, sb, "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exit code %d, want 7", code)
	}

	// The agent refuses a wrong key.
	bad := agentapi.New(sb.AgentURL, "wrong", h.rt.HTTPClient())
	var apiErr *agentapi.APIError
	if _, err := bad.Exec(ctx, agentapi.ExecRequest{Argv: []string{"true"}}, nil); !errors.As(err, &apiErr) || apiErr.Status != 401 {
		t.Errorf("exec with a wrong key = %v, want 401", err)
	}

	// pause freezes, resume thaws, and the sandbox works again.
	got, err := h.rt.Pause(ctx, sb.ID)
	if err != nil || got.Status != sandbox.StatusPaused || got.State != "paused" {
		t.Fatalf("pause: %+v %v", got.State, err)
	}
	if list, _ := h.rt.List(ctx, sandbox.ListOptions{All: true, Label: env.Labels()}); len(list) != 1 || list[0].Status != sandbox.StatusPaused {
		t.Errorf("list after pause: %+v", list)
	}
	if got, err = h.rt.Resume(ctx, sb.ID); err != nil || got.Status != sandbox.StatusRunning {
		t.Fatalf("resume from pause: %v %v", got.Status, err)
	}
	if _, code := run(t, h, sb, "true"); code != 0 {
		t.Errorf("exec after resume: exit %d", code)
	}
	// A file written before stop survives stop and resume.
	if _, code := run(t, h, sb, "sh", "-c", "echo kept > /workspace/f"); code != 0 {
		t.Fatal("write file")
	}
	if got, err = h.rt.Stop(ctx, sb.ID); err != nil || got.Status != sandbox.StatusPaused || got.State != "exited" {
		t.Fatalf("stop: %+v %v", got, err)
	}
	if got.ExitCode != 0 || got.OOMKilled {
		t.Errorf("stop: exit code %d oom %v; the agent should exit 0 on SIGTERM", got.ExitCode, got.OOMKilled)
	}
	// Running-only listing leaves a stopped sandbox out.
	if list, _ := h.rt.List(ctx, sandbox.ListOptions{Label: env.Labels()}); len(list) != 0 {
		t.Errorf("list of running sandboxes after stop: %d", len(list))
	}
	if got, err = h.rt.Resume(ctx, sb.ID); err != nil || got.Status != sandbox.StatusRunning {
		t.Fatalf("resume from stop: %v %v", got.Status, err)
	}
	if out, _ := run(t, h, got, "cat", "/workspace/f"); out != "kept\n" {
		t.Errorf("file after stop+resume: %q", out)
	}

	// Logs hold the agent's start lines.
	rc, err := h.rt.Logs(ctx, sb.ID, sandbox.LogOptions{Tail: "all"})
	if err != nil {
		t.Fatal(err)
	}
	logs, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Contains(logs, []byte("agent")) {
		t.Errorf("logs: %q", logs)
	}

	// rm removes the container and its port reservation; again is a no-op.
	before := h.reservations(t)
	if len(before) != 1 {
		t.Errorf("reservations while running: %v, want one", before)
	}
	if err := h.rt.Remove(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.rt.Remove(ctx, sb.ID); err != nil {
		t.Errorf("second remove: %v", err)
	}
	if _, err := h.rt.Get(ctx, sb.ID); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Get after remove = %v", err)
	}
	if _, err := env.Client.ContainerInspect(ctx, sb.ContainerID, client.ContainerInspectOptions{}); err == nil {
		t.Error("container still exists after remove")
	}
	if res := h.reservations(t); len(res) != 0 {
		t.Errorf("reservations after remove: %v", res)
	}
}

// Two runtimes (as two berth processes would be) see the same sandboxes.
func TestSecondRuntimeSeesSandboxes(t *testing.T) {
	h1 := newHarness(t, nil)
	h2 := newHarness(t, nil)
	sb := h1.create(t, spec(t))
	got, err := h2.rt.Get(context.Background(), sb.ID)
	if err != nil || got.Key != sb.Key || got.AgentURL != sb.AgentURL {
		t.Fatalf("second runtime: %+v, %v", got, err)
	}
	if out, code := run(t, h2, got, "echo", "ok"); out != "ok\n" || code != 0 {
		t.Errorf("exec through second runtime: %q %d", out, code)
	}
}

func TestDebugStreamsContainerLogs(t *testing.T) {
	h := newHarness(t, nil)
	var buf syncBuffer
	h.rt.opts.LogOutput = &buf
	s := spec(t)
	s.Debug = true
	sb := h.create(t, s)
	// The stream has ended by the time Create returns: nothing more arrives.
	got := buf.String()
	if !strings.Contains(got, "[sandbox "+sb.ID+"]") || !strings.Contains(got, "agent") {
		t.Fatalf("debug log stream: %q", got)
	}
	run(t, h, sb, "true")
	if buf.String() != got {
		t.Errorf("log stream went on after create returned")
	}
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}
func (b *syncBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }

// logs -f delivers lines as the container writes them, and ends with ctx.
func TestLogsFollow(t *testing.T) {
	h := newHarness(t, nil)
	sb := h.create(t, spec(t))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rc, err := h.rt.Logs(ctx, sb.ID, sandbox.LogOptions{Follow: true, Tail: "0"})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	// The agent logs every exec to its stderr, i.e. the container's log.
	marker := "follow-marker-" + env.RunID
	run(t, h, sb, "echo", marker)
	deadline := time.After(20 * time.Second)
	for found := false; !found; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("log stream ended early")
			}
			found = strings.Contains(l, marker)
		case <-deadline:
			t.Fatal("the exec's log line never arrived")
		}
	}
	cancel()
	for range lines { // the stream ends once ctx is cancelled
	}
}
