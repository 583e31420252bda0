package client_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/ports"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/server"
)

var env dockertest.Env

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m, &env)) }

// engineServer is berth serve on the real engine, in this process: a
// docker.Runtime, the runtime view, the server in an httptest.Server, and
// clients of two tenants of its own.
type engineServer struct {
	rt           *docker.Runtime
	url          string
	alice, bob   *client.Client
	aliceTenant  string
	bobTenant    string
	sandboxSpecs func() (sandbox.Spec, error)
}

func token() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newEngineServer starts the server; each of opts may change its options
// (es.rt is set when they run).
func newEngineServer(t testing.TB, opts ...func(*engineServer, *server.Options)) *engineServer {
	t.Helper()
	c := env.Require(t)
	env.RequireImage(t, dockertest.BusyboxImage)
	dir := t.TempDir()
	res := image.NewResolver(c, image.Options{AgentBinary: env.AgentBinary, LockDir: filepath.Join(env.StateDir, "locks")})
	var rt *docker.Runtime
	alloc, err := ports.New(ports.Options{
		Dir: filepath.Join(dir, "ports"), BindAddr: "127.0.0.1",
		Alive: func(ctx context.Context, owner string) (bool, error) { return rt.Exists(ctx, owner) },
	})
	if err != nil {
		t.Fatal(err)
	}
	rt = docker.New(c, docker.Options{Images: res, Ports: alloc, StateDir: dir, DaemonHost: c.DaemonHost()})
	// The live view is the monitor, as in berth serve, scoped to this run.
	mon, err := monitor.New(monitor.Options{Engine: c, Runtime: rt, Records: rt, Scope: env.Labels()})
	if err != nil {
		t.Fatal(err)
	}
	mctx, stopMon := context.WithCancel(context.Background())
	monDone := make(chan struct{})
	go func() {
		defer close(monDone)
		_ = mon.Run(mctx)
	}()
	t.Cleanup(func() { stopMon(); <-monDone })
	<-mon.Synced()
	es := &engineServer{rt: rt, aliceTenant: "alice-" + env.RunID, bobTenant: "bob-" + env.RunID}
	aliceTok, bobTok := token(), token()
	es.sandboxSpecs = func() (sandbox.Spec, error) {
		return sandbox.Spec{Image: sandbox.ImageSpec{Base: dockertest.BusyboxImage}, Labels: env.Labels(), UserID: 1000}, nil
	}
	so := server.Options{
		Config: server.Config{Tenants: []server.Tenant{
			{Name: es.aliceTenant, Token: aliceTok},
			{Name: es.bobTenant, Token: bobTok},
		}},
		Runtime: rt, View: mon, SpecDefaults: es.sandboxSpecs,
	}
	for _, o := range opts {
		o(es, &so)
	}
	srv, err := server.New(so)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	t.Cleanup(ts.Close)
	es.url = ts.URL
	if es.alice, err = client.New(ts.URL, aliceTok, nil); err != nil {
		t.Fatal(err)
	}
	if es.bob, err = client.New(ts.URL, bobTok, nil); err != nil {
		t.Fatal(err)
	}
	return es
}

// create makes a sandbox through the API and removes it (directly) when
// the test ends.
func (es *engineServer) create(t testing.TB, c *client.Client, req client.CreateRequest) sandbox.Sandbox {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sb, err := c.Create(ctx, req)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		if err := es.rt.Remove(context.Background(), sb.ID); err != nil {
			t.Errorf("cleanup: remove %s: %v", sb.ID, err)
		}
	})
	return sb
}

func TestEngineLifecycleAndExec(t *testing.T) {
	es := newEngineServer(t)
	c := es.alice
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	events, err := c.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()

	name := "api-" + env.RunID
	sb := es.create(t, c, client.CreateRequest{Name: name, Env: map[string]string{"GREETING": "hello"},
		Labels: map[string]string{"purpose": "engine-test"}, Memory: 64 << 20})
	if sb.Owner != es.aliceTenant || sb.Status != sandbox.StatusRunning || sb.Labels["purpose"] != "engine-test" ||
		sb.Labels[server.MemoryLabel] != "67108864" {
		t.Fatalf("created %+v", sb)
	}
	// The events: created (the monitor's, from Docker) and ready (the
	// server's).
	seen := map[string]bool{}
	for !seen[monitor.EventCreated] || !seen[monitor.EventReady] {
		e, err := events.Next()
		if err != nil {
			t.Fatalf("events: %v (seen %v)", err, seen)
		}
		if e.ID != sb.ID || e.Owner != es.aliceTenant {
			t.Fatalf("event of another sandbox or owner: %+v", e)
		}
		seen[e.Type] = true
	}
	// Get by name and prefix; list with a label filter.
	for _, ref := range []string{name, sb.ID[:8]} {
		if got, err := c.Get(ctx, ref); err != nil || got.ID != sb.ID {
			t.Errorf("get %s: %+v %v", ref, got, err)
		}
	}
	list, err := c.ListAll(ctx, client.ListOptions{Label: map[string]string{"purpose": "engine-test"}})
	if err != nil || len(list) != 1 || list[0].ID != sb.ID {
		t.Errorf("list: %+v %v", list, err)
	}
	// Exec: a shell string, argv, exit code, stderr, env.
	stdout, stderr, exit, err := c.ExecOutput(ctx, sb.ID, client.ExecRequest{Command: `echo "$GREETING $(id -u)"; echo oops >&2; exit 3`})
	if err != nil || string(stdout) != "hello 1000\n" || string(stderr) != "oops\n" || exit.ExitCode != 3 {
		t.Fatalf("exec: %q %q %+v %v", stdout, stderr, exit, err)
	}
	stdout, _, exit, err = c.ExecOutput(ctx, sb.ID, client.ExecRequest{Cmd: []string{"cat"}, Stdin: []byte("from stdin")})
	if err != nil || string(stdout) != "from stdin" || exit.ExitCode != 0 {
		t.Fatalf("exec argv with stdin: %q %+v %v", stdout, exit, err)
	}
	// A session keeps its cwd.
	if _, _, _, err := c.ExecOutput(ctx, sb.ID, client.ExecRequest{Session: "s1", Command: "cd /tmp"}); err != nil {
		t.Fatalf("session exec: %v", err)
	}
	stdout, _, exit, err = c.ExecOutput(ctx, sb.ID, client.ExecRequest{Session: "s1", Cmd: []string{"pwd"}})
	if err != nil || string(stdout) != "/tmp\n" || exit.Type != agentapi.EventExit {
		t.Errorf("session pwd: %q %+v %v", stdout, exit, err)
	}
	// An agent refusal passes through.
	if _, err := c.Exec(ctx, sb.ID, client.ExecRequest{Cmd: []string{"no-such-program"}}, nil); !client.IsStatus(err, 400) {
		t.Errorf("exec of a missing program: %v", err)
	}

	// Pause: exec refused; resume: exec works; stop and resume again.
	if got, err := c.Pause(ctx, sb.ID); err != nil || got.Status != sandbox.StatusPaused || got.State != "paused" {
		t.Fatalf("pause: %+v %v", got, err)
	}
	if _, err := c.Exec(ctx, sb.ID, client.ExecRequest{Command: "true"}, nil); !errors.Is(err, sandbox.ErrNotRunning) {
		t.Errorf("exec while paused: %v", err)
	}
	if got, err := c.Resume(ctx, sb.ID); err != nil || got.Status != sandbox.StatusRunning {
		t.Fatalf("resume: %+v %v", got, err)
	}
	if got, err := c.Stop(ctx, sb.ID); err != nil || got.State != "exited" {
		t.Fatalf("stop: %+v %v", got, err)
	}
	if got, err := c.Resume(ctx, sb.ID); err != nil || got.Status != sandbox.StatusRunning {
		t.Fatalf("resume after stop: %+v %v", got, err)
	}
	if out, _, _, err := c.ExecOutput(ctx, sb.ID, client.ExecRequest{Command: "echo back"}); err != nil || string(out) != "back\n" {
		t.Errorf("exec after resume: %q %v", out, err)
	}

	// Logs: the agent's own log lines.
	rc, err := c.Logs(ctx, sb.ID, client.LogOptions{Tail: "all"})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !strings.Contains(string(logs), "agent listening") {
		t.Errorf("logs: %q %v", logs, err)
	}
	fctx, fcancel := context.WithCancel(ctx)
	rc, err = c.Logs(fctx, sb.ID, client.LogOptions{Follow: true, Tail: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if line, err := bufio.NewReader(rc).ReadString('\n'); err != nil || !strings.Contains(line, "level=") {
		t.Errorf("follow: %q %v", line, err)
	}
	fcancel()
	rc.Close()

	// Another tenant sees nothing of it.
	if _, err := es.bob.Get(ctx, sb.ID); !client.IsStatus(err, 404) {
		t.Errorf("bob gets alice's sandbox: %v", err)
	}
	if _, err := es.bob.Exec(ctx, sb.ID, client.ExecRequest{Command: "true"}, nil); !client.IsStatus(err, 404) {
		t.Errorf("bob execs in alice's sandbox: %v", err)
	}
	if list, err := es.bob.ListAll(ctx, client.ListOptions{}); err != nil || len(list) != 0 {
		t.Errorf("bob's list: %+v %v", list, err)
	}

	// Remove: gone from Docker too.
	if err := c.Remove(ctx, name); err != nil {
		t.Fatalf("remove: %v", err)
	}
	if _, err := c.Get(ctx, sb.ID); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("get after remove: %v", err)
	}
	if ok, err := es.rt.Exists(ctx, sb.ID); err != nil || ok {
		t.Errorf("the container is still there: %v %v", ok, err)
	}
}

// The agent's own API (files, background processes, the PTY) through the
// server's proxy, with only the server's address and token.
func TestEngineAgentProxy(t *testing.T) {
	es := newEngineServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sb := es.create(t, es.alice, client.CreateRequest{})
	ag := es.alice.Agent(sb.ID)

	info, err := ag.WriteFile(ctx, "notes/today.md", strings.NewReader("through the proxy\n"), agentapi.WriteOptions{Mkdirs: true})
	if err != nil || info.Path != "/workspace/notes/today.md" || info.UID != 1000 {
		t.Fatalf("write: %+v %v", info, err)
	}
	data, _, err := ag.ReadFileBytes(ctx, "notes/today.md", agentapi.ReadOptions{})
	if err != nil || string(data) != "through the proxy\n" {
		t.Fatalf("read: %q %v", data, err)
	}
	if out, _, _, err := es.alice.ExecOutput(ctx, sb.ID, client.ExecRequest{Command: "cat /workspace/notes/today.md"}); err != nil || string(out) != string(data) {
		t.Errorf("the file seen by a command: %q %v", out, err)
	}
	// A background process: start, wait, output.
	p, err := ag.StartProcess(ctx, agentapi.ProcessRequest{Command: "echo bg-out; exit 7", Name: "job"})
	if err != nil {
		t.Fatalf("start process: %v", err)
	}
	done, err := ag.WaitProcess(ctx, "job", time.Minute)
	if err != nil || done.Running() || done.ExitCode != 7 {
		t.Fatalf("wait: %+v %v", done, err)
	}
	out, err := ag.ProcessOutput(ctx, p.ID, 0, false, nil)
	if err != nil || len(out.Chunks) != 1 || string(out.Chunks[0].Data) != "bg-out\n" {
		t.Fatalf("output: %+v %v", out, err)
	}
	// The terminal: a websocket through the proxy.
	pty, err := ag.DialPTY(ctx, agentapi.PTYOptions{Cmd: "echo pty-$((6*7)); exit 5"})
	if err != nil {
		t.Fatalf("pty: %v", err)
	}
	all, err := io.ReadAll(pty)
	pty.Close()
	if err != nil || !strings.Contains(string(all), "pty-42") {
		t.Errorf("pty output %q %v", all, err)
	}
	if code, ok := pty.ExitCode(); !ok || code != 5 {
		t.Errorf("pty exit %d %v", code, ok)
	}
	// The proxy for another tenant: 404 before the agent.
	if _, err := es.bob.Agent(sb.ID).Stat(ctx, "notes"); !strings.Contains(err.Error(), "404") {
		t.Errorf("bob through the proxy: %v", err)
	}
}

// A sandbox without a network: the agent is on a unix socket, and the
// proxy and exec reach it there.
func TestEngineNoNetwork(t *testing.T) {
	es := newEngineServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	sb := es.create(t, es.alice, client.CreateRequest{Network: sandbox.NetworkNone})
	if out, _, _, err := es.alice.ExecOutput(ctx, sb.ID, client.ExecRequest{Command: "echo offline"}); err != nil || string(out) != "offline\n" {
		t.Fatalf("exec without a network: %q %v", out, err)
	}
	if _, err := es.alice.Agent(sb.ID).WriteFile(ctx, "x", strings.NewReader("x"), agentapi.WriteOptions{}); err != nil {
		t.Fatalf("proxy over the unix socket: %v", err)
	}
}
