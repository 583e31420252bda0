// Package e2e tests berth-agent's API against the real agent in a real
// container, through the host's Go client: the way berth uses it.
package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/ports"
	"github.com/berth-dev/berth/internal/sandbox"
)

var env dockertest.Env

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m, &env)) }

// box is one sandbox of a test and a client of its agent.
type box struct {
	sandbox.Sandbox
	agent *agentapi.Client
	rt    *docker.Runtime
}

// newBox creates a sandbox from base (dockertest.DebianImage has bash,
// dockertest.BusyboxImage only sh) and removes it when the test ends.
func newBox(t testing.TB, base string) *box {
	t.Helper()
	c := env.Require(t)
	env.RequireImage(t, base)
	dir := t.TempDir()
	res := image.NewResolver(c, image.Options{AgentBinary: env.AgentBinary, LockDir: filepath.Join(env.StateDir, "locks")})
	alloc, err := ports.New(ports.Options{Dir: filepath.Join(dir, "ports"), BindAddr: "127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	rt := docker.New(c, docker.Options{Images: res, Ports: alloc, StateDir: dir, DaemonHost: c.DaemonHost()})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	sb, err := rt.Create(ctx, sandbox.Spec{Image: sandbox.ImageSpec{Base: base}, Labels: env.Labels(), UserID: 1000})
	if err != nil {
		t.Fatalf("create sandbox from %s: %v", base, err)
	}
	t.Cleanup(func() {
		if err := rt.Remove(context.Background(), sb.ID); err != nil {
			t.Errorf("remove sandbox %s: %v", sb.ID, err)
		}
	})
	return &box{Sandbox: sb, agent: agentapi.New(sb.AgentURL, sb.Key, rt.HTTPClient()), rt: rt}
}

// sh runs a shell line with the one-shot exec and returns stdout+stderr and
// the exit code.
func (b *box) sh(t *testing.T, line string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	stdout, stderr, exit, err := b.agent.ExecOutput(ctx, agentapi.ExecRequest{Command: line})
	if err != nil {
		t.Fatalf("exec %q: %v", line, err)
	}
	return string(stdout) + string(stderr), exit.ExitCode
}

func TestOneShotExecInContainer(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)
	if out, code := b.sh(t, `echo "$0 $(id -un) $(pwd)"; printf 'héllo ✓\n'`); code != 0 || out != "/bin/bash berth /workspace\nhéllo ✓\n" {
		t.Errorf("got %q (exit %d)", out, code)
	}
	// A daemon forked by the command does not hang the call, and its zombie
	// is reaped once it exits (Docker's init is PID 1).
	if out, code := b.sh(t, `sleep 0.2 & echo started`); code != 0 || out != "started\n" {
		t.Errorf("daemon: %q %d", out, code)
	}
	out, _ := b.sh(t, `sleep 0.5; cat /proc/[0-9]*/stat 2>/dev/null | awk '$3 == "Z"' | wc -l`)
	if out != "0\n" {
		t.Errorf("zombies left: %q", out)
	}
}

// /server_info reports the sandbox's own cgroup and disks.
func TestServerInfoResources(t *testing.T) {
	b := newBox(t, dockertest.BusyboxImage)
	info, err := b.agent.ServerInfo(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	r := info.Resources
	if r.MemoryBytes <= 0 || r.PidsLimit != 4096 || r.Pids < 1 || len(r.Disks) != 2 || r.Disks[1].Path != "/workspace" {
		t.Errorf("resources: %+v", r)
	}
	if info.User != "berth" || info.UserID != 1000 {
		t.Errorf("user %q %d", info.User, info.UserID)
	}
}
