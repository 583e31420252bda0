package docker

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/ports"
	"github.com/berth-dev/berth/internal/sandbox"
)

var env dockertest.Env

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m, &env)) }

// harness is a Runtime on the real engine, with its own state dir, so tests
// see the port reservations they make.
type harness struct {
	rt       *Runtime
	portsDir string
}

func newHarness(t *testing.T, engine Engine) *harness {
	t.Helper()
	c := env.Require(t)
	if engine == nil {
		engine = c
	}
	dir := t.TempDir()
	res := image.NewResolver(c, image.Options{AgentBinary: env.AgentBinary, LockDir: filepath.Join(dir, "locks")})
	var rt *Runtime
	alloc, err := ports.New(ports.Options{
		Dir:      filepath.Join(dir, "ports"),
		BindAddr: "127.0.0.1",
		Alive:    func(ctx context.Context, owner string) (bool, error) { return rt.Exists(ctx, owner) },
	})
	if err != nil {
		t.Fatal(err)
	}
	rt = New(engine, Options{Images: res, Ports: alloc, StateDir: dir, DaemonHost: c.DaemonHost()})
	return &harness{rt: rt, portsDir: filepath.Join(dir, "ports")}
}

// spec is a sandbox on the busybox test image, labelled for this test run.
func spec(t *testing.T) sandbox.Spec {
	env.RequireImage(t, dockertest.BusyboxImage)
	return sandbox.Spec{
		Image:  sandbox.ImageSpec{Base: dockertest.BusyboxImage},
		Labels: env.Labels(),
		UserID: 1000,
	}
}

// create makes a sandbox and removes it when the test ends.
func (h *harness) create(t *testing.T, s sandbox.Spec) sandbox.Sandbox {
	t.Helper()
	sb, err := h.rt.Create(context.Background(), s)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		if err := h.rt.Remove(context.Background(), sb.ID); err != nil {
			t.Errorf("cleanup: remove %s: %v", sb.ID, err)
		}
	})
	return sb
}

// reservations lists the port reservation files left in the harness's dir.
func (h *harness) reservations(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(h.portsDir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if fi, err := e.Info(); err == nil && fi.Size() > 0 {
			names = append(names, e.Name())
		}
	}
	return names
}

// assertNothingLeft checks that no container of this run exists besides
// those in keep, and no port reservation is left for owner.
func (h *harness) assertNothingLeft(t *testing.T, before []string) {
	t.Helper()
	now := env.Containers(t)
	known := map[string]bool{}
	for _, id := range before {
		known[id] = true
	}
	for _, id := range now {
		if !known[id] {
			t.Errorf("container %s left behind", id)
		}
	}
	if res := h.reservations(t); len(res) > 0 {
		t.Errorf("port reservations left behind: %v", res)
	}
}
