package pool

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/ports"
	"github.com/berth-dev/berth/internal/sandbox"
)

var env dockertest.Env

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m, &env)) }

// machine is one machine's berth state: runtimes made on it share the
// state dir (claims, ports, locks), as berth processes of a machine do.
type machine struct {
	dir string
}

func newMachine(t *testing.T) *machine {
	t.Helper()
	env.Require(t)
	env.RequireImage(t, dockertest.BusyboxImage)
	m := &machine{dir: t.TempDir()}
	rt := m.runtime(t)
	// Every container of this run that the test made, pooled or claimed,
	// goes when the test ends (the sweep of dockertest.Main would report
	// it as a leak).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res, err := env.Client.ContainerList(ctx, client.ContainerListOptions{
			All: true, Filters: make(client.Filters).Add("label", dockertest.Label+"="+env.RunID),
		})
		if err != nil {
			t.Errorf("cleanup: list: %v", err)
			return
		}
		for _, c := range res.Items {
			if err := rt.Remove(ctx, c.Labels[sandbox.LabelID]); err != nil {
				t.Errorf("cleanup: remove %s: %v", c.Labels[sandbox.LabelID], err)
			}
		}
	})
	return m
}

// runtime is a new Runtime on the machine, as a new berth process makes.
func (m *machine) runtime(t *testing.T) *docker.Runtime {
	t.Helper()
	c := env.Client
	res := image.NewResolver(c, image.Options{AgentBinary: env.AgentBinary, LockDir: filepath.Join(m.dir, "locks")})
	var rt *docker.Runtime
	alloc, err := ports.New(ports.Options{
		Dir:      filepath.Join(m.dir, "ports"),
		BindAddr: "127.0.0.1",
		Alive:    func(ctx context.Context, owner string) (bool, error) { return rt.Exists(ctx, owner) },
	})
	if err != nil {
		t.Fatal(err)
	}
	rt = docker.New(c, docker.Options{Images: res, Ports: alloc, StateDir: m.dir, DaemonHost: c.DaemonHost()})
	return rt
}

// busybox is the spec of the tests' pools.
func busybox() sandbox.Spec {
	return sandbox.Spec{Image: sandbox.ImageSpec{Base: dockertest.BusyboxImage}, UserID: 1000}
}

// request is a caller's create of the busybox shape.
func request(owner, name string) sandbox.Spec {
	s := busybox()
	s.Owner, s.Name = owner, name
	s.Env = map[string]string{"GREETING": "hello " + owner, "TENANT_TOKEN": "secret-" + owner}
	s.Labels = map[string]string{dockertest.Label: env.RunID, "team": "core"}
	return s
}

func newManager(t *testing.T, rt Runtime, shapes ...Shape) *Manager {
	t.Helper()
	m, err := New(rt, Options{Shapes: shapes, Labels: env.Labels(), Resync: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// run runs m in the background until the test ends.
func run(t *testing.T, m *Manager) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// waitReady waits until the pool with key has ready sandboxes.
func waitReady(t *testing.T, m *Manager, key string, ready int) ShapeStats {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		for _, st := range m.Stats() {
			if st.Key == key && st.Ready == ready && st.Filling == 0 {
				return st
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool %s never had %d ready: %+v", key, ready, m.Stats())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pooledIDs lists this run's unclaimed pooled sandboxes in the engine.
func pooledIDs(t *testing.T, rt *docker.Runtime) []string {
	t.Helper()
	res, err := env.Client.ContainerList(context.Background(), client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", dockertest.Label+"="+env.RunID).Add("label", docker.LabelPool),
	})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range res.Items {
		if sb := rt.FromSummary(c); sb.Owner == docker.OwnerPool {
			ids = append(ids, sb.ID)
		}
	}
	slices.Sort(ids)
	return ids
}
