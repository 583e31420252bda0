package monitor

// Tests on a real Docker engine. Each monitor is scoped to this test run's
// label, so it never sees (nor acts on) another package's containers.

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/ports"
	"github.com/berth-dev/berth/internal/sandbox"
)

var env dockertest.Env

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m, &env)) }

// engineRuntime is a docker.Runtime on the real engine with its own state
// dir, as internal/docker's tests build it.
func engineRuntime(t *testing.T) (*docker.Runtime, *client.Client) {
	t.Helper()
	c := env.Require(t)
	env.RequireImage(t, dockertest.BusyboxImage)
	dir := t.TempDir()
	res := image.NewResolver(c, image.Options{AgentBinary: env.AgentBinary, LockDir: filepath.Join(dir, "locks")})
	var rt *docker.Runtime
	alloc, err := ports.New(ports.Options{
		Dir:      filepath.Join(dir, "ports"),
		BindAddr: "127.0.0.1",
		Alive:    func(ctx context.Context, owner string) (bool, error) { return rt.Exists(ctx, owner) },
	})
	if err != nil {
		t.Fatal(err)
	}
	rt = docker.New(c, docker.Options{Images: res, Ports: alloc, StateDir: dir, DaemonHost: c.DaemonHost()})
	return rt, c
}

func engineSpec() sandbox.Spec {
	return sandbox.Spec{Image: sandbox.ImageSpec{Base: dockertest.BusyboxImage}, Labels: env.Labels(), UserID: 1000}
}

// createSandbox makes a sandbox and removes it when the test ends.
func createSandbox(t *testing.T, rt *docker.Runtime) sandbox.Sandbox {
	t.Helper()
	sb, err := rt.Create(context.Background(), engineSpec())
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		if err := rt.Remove(context.Background(), sb.ID); err != nil {
			t.Errorf("cleanup: remove %s: %v", sb.ID, err)
		}
	})
	return sb
}

// engineMonitor runs a monitor on the real engine, scoped to this run.
func engineMonitor(t *testing.T, rt *docker.Runtime, c *client.Client, opts Options) (*Monitor, <-chan Event) {
	t.Helper()
	if opts.Engine == nil {
		opts.Engine = c
	}
	opts.Runtime, opts.Records, opts.Scope = rt, rt, env.Labels()
	opts.HTTPClient = rt.HTTPClient()
	if opts.HealthInterval == 0 {
		opts.HealthInterval = -1
	}
	if opts.ReconcileInterval == 0 {
		opts.ReconcileInterval = -1
	}
	if testing.Verbose() {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	events := m.Subscribe(ctx)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-m.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("monitor not synced after 10s")
	}
	return m, events
}

// expect reads events until it has seen, for sandbox id and in this order,
// events of the given types; other events are skipped. It fails after 30s.
func expect(t *testing.T, events <-chan Event, id string, types ...string) []Event {
	t.Helper()
	var got []Event
	deadline := time.After(30 * time.Second)
	for len(got) < len(types) {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("event channel closed; waiting for %v of %s", types[len(got):], id)
			}
			if e.ID != id {
				continue
			}
			if e.Type != types[len(got)] {
				if e.Type == EventHealthy || e.Type == EventError && types[len(got)] != EventError {
					t.Logf("event %s %q while waiting for %s", e.Type, e.Reason, types[len(got)])
					continue
				}
				t.Fatalf("event %s (%q) for %s, want %s", e.Type, e.Reason, id, types[len(got)])
			}
			got = append(got, e)
		case <-deadline:
			t.Fatalf("no %s event for %s within 30s (had %d of %v)", types[len(got)], id, len(got), types)
		}
	}
	return got
}

// await reads events until one of type typ for sandbox id comes, skipping
// any other. It fails after 30s.
func await(t *testing.T, events <-chan Event, id, typ string) Event {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e, ok := <-events:
			if !ok {
				t.Fatalf("event channel closed; waiting for %s of %s", typ, id)
			}
			if e.ID == id && e.Type == typ {
				return e
			}
		case <-deadline:
			t.Fatalf("no %s event for %s within 30s", typ, id)
		}
	}
}

// waitFor polls cond until it holds; it fails after 10s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10s for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitStatus waits until the view shows sandbox id with status st.
func waitStatus(t *testing.T, m *Monitor, id string, st sandbox.Status) sandbox.Sandbox {
	t.Helper()
	var sb sandbox.Sandbox
	waitFor(t, fmt.Sprintf("sandbox %s to be %s", id, st), func() bool {
		var ok bool
		sb, ok = m.Get(id)
		return ok && sb.Status == st
	})
	return sb
}

func TestEngineViewFollowsLifecycle(t *testing.T) {
	rt, c := engineRuntime(t)
	m, events := engineMonitor(t, rt, c, Options{})
	ctx := context.Background()

	sb := createSandbox(t, rt)
	ev := expect(t, events, sb.ID, EventCreated)
	if ev[0].Sandbox == nil || ev[0].Owner != "local" {
		t.Errorf("created event: %+v", ev[0])
	}
	got := waitStatus(t, m, sb.ID, sandbox.StatusRunning)
	if got.Key != sb.Key || got.ContainerID != sb.ContainerID || got.URLs["agent"] == "" {
		t.Errorf("view record: key ok %v, container %s, urls %v", got.Key == sb.Key, got.ContainerID, got.URLs)
	}
	// The server publishes ready with Create's record: the view then
	// reaches the agent as Create does (its socket, on a local engine).
	m.Publish(Event{Type: EventReady, ID: sb.ID, Sandbox: &sb})
	expect(t, events, sb.ID, EventReady)
	if got, _ := m.Get(sb.ID); got.AgentURL != sb.AgentURL {
		t.Errorf("after ready: agent %q, want %q", got.AgentURL, sb.AgentURL)
	}

	if _, err := rt.Pause(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	expect(t, events, sb.ID, EventPaused)
	waitStatus(t, m, sb.ID, sandbox.StatusPaused)

	if _, err := rt.Resume(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	expect(t, events, sb.ID, EventResumed)
	waitStatus(t, m, sb.ID, sandbox.StatusRunning)

	if _, err := rt.Stop(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	ev = expect(t, events, sb.ID, EventStopped)
	if st := ev[0].Sandbox; st == nil || st.State != "exited" || st.Status != sandbox.StatusPaused {
		t.Errorf("stopped event record: %+v", st)
	}

	if _, err := rt.Resume(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	expect(t, events, sb.ID, EventResumed)
	waitStatus(t, m, sb.ID, sandbox.StatusRunning)

	if err := rt.Remove(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	expect(t, events, sb.ID, EventRemoved)
	if _, ok := m.Get(sb.ID); ok {
		t.Error("removed sandbox still in the view")
	}
}

// breakable is the real engine with event streams the test can cut, and
// hold back from reopening.
type breakable struct {
	*client.Client
	hold    sync.Mutex // held by the test: no stream opens
	mu      sync.Mutex
	cancels []context.CancelFunc
	untils  []string
}

func (b *breakable) Events(ctx context.Context, opts client.EventsListOptions) client.EventsResult {
	b.hold.Lock()
	b.hold.Unlock() // a gate, not a critical section
	ctx, cancel := context.WithCancel(ctx)
	b.mu.Lock()
	b.cancels = append(b.cancels, cancel)
	b.untils = append(b.untils, opts.Until)
	b.mu.Unlock()
	return b.Client.Events(ctx, opts)
}

// cut ends every open stream, as a dropped connection does.
func (b *breakable) cut() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, c := range b.cancels {
		c()
	}
}

// While the event stream is down, a sandbox is paused, then stopped: after
// the reconnect, the engine's replay (since the last event, until now)
// gives each change once and with its meaning, and a live stream follows.
func TestEngineReconnect(t *testing.T) {
	rt, c := engineRuntime(t)
	eng := &breakable{Client: c}
	m, events := engineMonitor(t, rt, c, Options{Engine: eng})
	ctx := context.Background()
	sb := createSandbox(t, rt)
	expect(t, events, sb.ID, EventCreated)
	waitStatus(t, m, sb.ID, sandbox.StatusRunning)

	eng.hold.Lock()
	eng.cut()
	if _, err := rt.Pause(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Stop(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := m.Get(sb.ID); got.Status != sandbox.StatusRunning {
		t.Fatalf("the view changed with no stream: %s", got.Status)
	}
	eng.hold.Unlock()
	// Stop thaws a paused sandbox first: the replay has all three.
	expect(t, events, sb.ID, EventPaused, EventResumed, EventStopped)
	waitStatus(t, m, sb.ID, sandbox.StatusPaused)

	// The live stream after the replay works.
	if _, err := rt.Resume(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	expect(t, events, sb.ID, EventResumed)
	eng.mu.Lock()
	untils := slices.Clone(eng.untils)
	eng.mu.Unlock()
	if len(untils) != 3 || untils[0] != "" || untils[1] == "" || untils[2] != "" {
		t.Errorf("streams opened with until %q: want live, replay, live", untils)
	}
}

// A fresh monitor serves the view of existing sandboxes at once: one list.
func TestEngineSyncExisting(t *testing.T) {
	rt, c := engineRuntime(t)
	ctx := context.Background()
	const n = 10
	var mu sync.Mutex
	var made []sandbox.Sandbox
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2) // two creates at a time, for a 2-core machine
	for range n {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			sb, err := rt.Create(ctx, engineSpec())
			if err != nil {
				t.Errorf("create: %v", err)
				return
			}
			mu.Lock()
			made = append(made, sb)
			mu.Unlock()
		})
	}
	wg.Wait()
	for _, sb := range made {
		t.Cleanup(func() { _ = rt.Remove(context.Background(), sb.ID) })
	}
	if t.Failed() {
		t.FailNow()
	}
	for _, sb := range made[:3] {
		if _, err := rt.Pause(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
	}
	for _, sb := range made[3:5] {
		if _, err := rt.Stop(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
	}
	want, err := rt.List(ctx, sandbox.ListOptions{All: true, Label: env.Labels()})
	if err != nil {
		t.Fatal(err)
	}

	m, err := New(Options{Engine: c, Runtime: rt, Records: rt, Scope: env.Labels(), HealthInterval: -1, ReconcileInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- m.Run(rctx) }()
	select {
	case <-m.Synced():
	case <-time.After(10 * time.Second):
		t.Fatal("not synced")
	}
	took := time.Since(began)
	view := m.List(Filter{Label: env.Labels()})
	cancel()
	<-done
	t.Logf("synced %d real sandboxes in %s", len(view), took)
	if took > time.Second {
		t.Errorf("sync took %s, want < 1s", took)
	}
	if len(view) != len(want) || len(view) != n {
		t.Fatalf("view has %d sandboxes, runtime lists %d, made %d", len(view), len(want), n)
	}
	byID := map[string]sandbox.Sandbox{}
	for _, g := range view {
		byID[g.ID] = g
	}
	for i, w := range want {
		g := byID[w.ID]
		if g.ID != w.ID || g.Status != w.Status || g.State != w.State || g.AgentURL != w.AgentURL || !g.CreatedAt.Equal(w.CreatedAt) || !maps.Equal(g.Labels, w.Labels) {
			t.Errorf("view[%d] = %s %s %s %s; runtime: %s %s %s %s", i, g.ID, g.Status, g.State, g.AgentURL, w.ID, w.Status, w.State, w.AgentURL)
		}
	}
}

// agentPID is the host pid of a sandbox's agent: the child of the
// container's init (Docker's init runs the agent). It skips the test where
// the engine's processes are not this machine's.
func agentPID(t *testing.T, c *client.Client, containerID string) int {
	t.Helper()
	res, err := c.ContainerInspect(context.Background(), containerID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	initPID := res.Container.State.Pid
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", initPID, initPID))
	if err != nil {
		t.Skipf("cannot see the container's processes from here (remote engine?): %v", err)
	}
	fields := strings.Fields(string(b))
	if len(fields) != 1 {
		t.Fatalf("container init %d has children %q, want the agent alone", initPID, fields)
	}
	pid, err := strconv.Atoi(fields[0])
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// A real health flip: the agent process is frozen from the host with
// SIGSTOP (the container stays "running"; its port still accepts
// connections, but nothing answers, as with a hung agent), so the checks
// time out and the sandbox turns ERROR; SIGCONT thaws it and the next
// check turns it RUNNING again.
func TestEngineHealthFlip(t *testing.T) {
	rt, c := engineRuntime(t)
	m, events := engineMonitor(t, rt, c, Options{
		HealthInterval: 200 * time.Millisecond, HealthTimeout: 300 * time.Millisecond,
		HealthFailures: 2, StartupGrace: -1,
	})
	sb := createSandbox(t, rt)
	expect(t, events, sb.ID, EventCreated)
	waitStatus(t, m, sb.ID, sandbox.StatusRunning)
	pid := agentPID(t, c, sb.ContainerID)

	// After its first passed check the record is re-read, and now has
	// the agent's socket as Create's has (on a local engine).
	waitFor(t, "the view's agent URL to be "+sb.AgentURL, func() bool {
		got, _ := m.Get(sb.ID)
		return got.AgentURL == sb.AgentURL
	})
	// A few rounds with a live agent: no error.
	time.Sleep(600 * time.Millisecond)
	if got, _ := m.Get(sb.ID); got.Status != sandbox.StatusRunning {
		t.Fatalf("healthy agent: %s %q", got.Status, got.Reason)
	}

	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Skipf("cannot signal the agent (pid %d): %v", pid, err)
	}
	thawed := false
	thaw := func() {
		if !thawed {
			thawed = true
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Errorf("SIGCONT agent: %v", err)
			}
		}
	}
	t.Cleanup(thaw)
	stopped := time.Now()
	ev := expect(t, events, sb.ID, EventError)
	t.Logf("ERROR %s after the agent froze: %s", time.Since(stopped).Round(time.Millisecond), ev[0].Reason)
	if !strings.HasPrefix(ev[0].Reason, "health check failed: ") {
		t.Errorf("reason %q", ev[0].Reason)
	}
	if got, _ := m.Get(sb.ID); got.Status != sandbox.StatusError || got.State != "running" {
		t.Errorf("frozen agent: status %s state %s", got.Status, got.State)
	}

	thaw()
	expect(t, events, sb.ID, EventHealthy)
	if got, _ := m.Get(sb.ID); got.Status != sandbox.StatusRunning || got.Reason != "" {
		t.Errorf("thawed agent: status %s reason %q", got.Status, got.Reason)
	}
}

// The idle policy pauses a real sandbox about IdleTimeout after its last
// activity, and Touch postpones it.
func TestEngineIdlePause(t *testing.T) {
	rt, c := engineRuntime(t)
	const idle = time.Second
	m, events := engineMonitor(t, rt, c, Options{Policy: Policy{IdleTimeout: idle}})
	sb := createSandbox(t, rt)
	expect(t, events, sb.ID, EventCreated)
	waitStatus(t, m, sb.ID, sandbox.StatusRunning)
	// Keep it busy for 2 s.
	var last time.Time
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		m.Touch(sb.ID)
		last = time.Now()
		if got, _ := m.Get(sb.ID); got.Status != sandbox.StatusRunning {
			t.Fatalf("touched sandbox is %s", got.Status)
		}
	}
	ev := expect(t, events, sb.ID, EventPaused, EventPolicy)
	after := ev[1].Time.Sub(last)
	t.Logf("paused %s after the last touch (idle timeout %s)", after.Round(time.Millisecond), idle)
	if after < idle || after > idle+time.Second {
		t.Errorf("paused %s after the last touch, want %s..%s", after, idle, idle+time.Second)
	}
	if ev[1].Reason != "idle 1s: paused" {
		t.Errorf("policy reason %q", ev[1].Reason)
	}
	if got, _ := m.Get(sb.ID); got.State != "paused" {
		t.Errorf("state %s", got.State)
	}
}

// The reconciler removes a berth container that was created and never
// started, and leaves a container without the berth.id label alone.
func TestEngineReconcileStaleCreate(t *testing.T) {
	rt, c := engineRuntime(t)
	ctx := context.Background()
	mk := func(labels map[string]string) string {
		maps.Copy(labels, env.Labels())
		res, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{Config: &container.Config{
			Image: dockertest.BusyboxImage, Cmd: []string{"true"}, Labels: labels,
		}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = c.ContainerRemove(context.Background(), res.ID, client.ContainerRemoveOptions{Force: true})
		})
		return res.ID
	}
	id := "stale" + env.RunID
	berthCID := mk(map[string]string{sandbox.LabelID: id, sandbox.LabelOwner: "test"})
	foreignCID := mk(map[string]string{"app": "not berth's"})

	var mu sync.Mutex
	var lastLive map[string]bool
	m, events := engineMonitor(t, rt, c, Options{
		ReconcileInterval: 200 * time.Millisecond, CreateGrace: time.Millisecond,
		ReleaseOrphans: func(_ context.Context, live map[string]bool) error {
			mu.Lock()
			defer mu.Unlock()
			lastLive = live
			return nil
		},
	})
	if e := await(t, events, id, EventPolicy); !strings.HasPrefix(e.Reason, "create never finished") {
		t.Errorf("reason %q", e.Reason)
	}
	if _, err := c.ContainerInspect(ctx, berthCID, client.ContainerInspectOptions{}); err == nil {
		t.Error("stale berth container still exists")
	}
	if _, err := c.ContainerInspect(ctx, foreignCID, client.ContainerInspectOptions{}); err != nil {
		t.Errorf("the container without berth.id is gone: %v", err)
	}
	if _, ok := m.Get(id); ok {
		t.Error("stale sandbox still in the view")
	}
	mu.Lock()
	defer mu.Unlock()
	if lastLive[id] {
		t.Error("ReleaseOrphans was told the removed sandbox is live")
	}
}
