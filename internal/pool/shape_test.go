package pool

import (
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/sandbox"
)

func TestShapeKey(t *testing.T) {
	base := func() sandbox.Spec {
		return sandbox.Spec{
			Image:       sandbox.ImageSpec{Base: "debian:bookworm-slim"},
			BindAddress: "127.0.0.1",
			Network:     sandbox.NetworkBridge,
			UserID:      1000,
		}
	}
	key := ShapeKey(base())
	if len(key) != 16 || ShapeKey(base()) != key {
		t.Fatalf("key %q: want 16 hex digits, stable", key)
	}
	int64p := func(v int64) *int64 { return &v }

	same := map[string]func(*sandbox.Spec){
		"name":          func(s *sandbox.Spec) { s.Name = "web" },
		"env":           func(s *sandbox.Spec) { s.Env = map[string]string{"TOKEN": "x"} },
		"labels":        func(s *sandbox.Spec) { s.Labels = map[string]string{"team": "core"} },
		"owner":         func(s *sandbox.Spec) { s.Owner = "alice" },
		"policy":        func(s *sandbox.Spec) { s.SecurityPolicy = sandbox.PolicyDeny },
		"debug":         func(s *sandbox.Spec) { s.Debug = true },
		"timeout":       func(s *sandbox.Spec) { s.Timeout = time.Minute },
		"force rebuild": func(s *sandbox.Spec) { s.Image.ForceRebuild = true },
		"empty lists": func(s *sandbox.Spec) {
			s.Volumes, s.Tmpfs, s.Publish, s.Networks = []string{}, []string{}, []int{}, []string{}
			s.Image.BuildArgs = map[string]string{}
		},
	}
	for name, mod := range same {
		s := base()
		mod(&s)
		if got := ShapeKey(s); got != key {
			t.Errorf("%s changed the key: %s, want %s", name, got, key)
		}
	}
	hostA, hostB := base(), base()
	hostA.Network, hostA.UseHostNetwork = sandbox.NetworkHost, true
	hostB.Network = sandbox.NetworkHost
	if ShapeKey(hostA) != ShapeKey(hostB) {
		t.Error("use_host_network + network host and network host alone differ")
	}

	differ := map[string]func(*sandbox.Spec){
		"base image":    func(s *sandbox.Spec) { s.Image.Base = "busybox" },
		"runtime image": func(s *sandbox.Spec) { s.Image.Runtime = "my/runtime:1" },
		"extra deps":    func(s *sandbox.Spec) { s.Image.ExtraDeps = "apk add git" },
		"build args":    func(s *sandbox.Spec) { s.Image.BuildArgs = map[string]string{"A": "1"} },
		"bind address":  func(s *sandbox.Spec) { s.BindAddress = "0.0.0.0" },
		"network":       func(s *sandbox.Spec) { s.Network = sandbox.NetworkNone },
		"networks":      func(s *sandbox.Spec) { s.Networks = []string{"backend"} },
		"user":          func(s *sandbox.Spec) { s.UserID = 0 },
		"memory":        func(s *sandbox.Spec) { s.Limits.Memory = 512 << 20 },
		"cpus":          func(s *sandbox.Spec) { s.Limits.NanoCPUs = 1e9 },
		"pids":          func(s *sandbox.Spec) { s.Limits.PidsLimit = 100 },
		"swappiness":    func(s *sandbox.Spec) { s.Limits.MemorySwappiness = int64p(0) },
		"ulimits":       func(s *sandbox.Spec) { s.Limits.Ulimits = []sandbox.Ulimit{{Name: "nofile", Soft: 1, Hard: 2}} },
		"volumes":       func(s *sandbox.Spec) { s.Volumes = []string{"/src:/workspace/src:ro"} },
		"tmpfs":         func(s *sandbox.Spec) { s.Tmpfs = []string{"/scratch"} },
		"publish":       func(s *sandbox.Spec) { s.Publish = []int{8080} },
		"vscode":        func(s *sandbox.Spec) { s.VSCode = true },
		"app ports":     func(s *sandbox.Spec) { s.AppPorts = 1 },
		"gpus":          func(s *sandbox.Spec) { s.GPUs.Enabled = true },
		"read-only":     func(s *sandbox.Spec) { s.ReadOnlyRootfs = true },
	}
	seen := map[string]string{key: "base"}
	for name, mod := range differ {
		s := base()
		mod(&s)
		got := ShapeKey(s)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s gives the key of %s: %s", name, prev, got)
		}
		seen[got] = name
	}
}

func TestShapesOfAManager(t *testing.T) {
	rt := docker.New(nil, docker.Options{}) // Normalize needs no engine
	base := sandbox.Spec{Image: sandbox.ImageSpec{Base: "busybox"}, UserID: 1000}
	m, err := New(rt, Options{Shapes: []Shape{{Spec: base, Size: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	// A request of the shape, with its own per-request parts, has its key.
	req := base
	req.Name, req.Owner, req.Env, req.Network, req.BindAddress = "x", "alice", map[string]string{"A": "1"}, "bridge", "127.0.0.1"
	n, err := rt.Normalize(req)
	if err != nil {
		t.Fatal(err)
	}
	if got := ShapeKey(n); got != m.Keys()[0] {
		t.Errorf("request key %s, pool key %s", got, m.Keys()[0])
	}
	big := base
	big.Limits.Memory = 512 << 20
	key, err := m.SetShape(big, 1)
	if err != nil || key == m.Keys()[0] || len(m.Keys()) != 2 {
		t.Fatalf("SetShape: %s %v %v", key, err, m.Keys())
	}
	if again, err := m.SetShape(big, 3); err != nil || again != key {
		t.Errorf("SetShape of the same shape: %s %v", again, err)
	}
	if err := m.Resize(m.Keys()[0], 0); err != nil {
		t.Fatal(err)
	}
	st := m.Stats()
	if st[0].Size != 0 || st[1].Size != 3 || st[1].Memory != 512<<20 || st[0].Image != "busybox" || st[0].Network != "bridge" {
		t.Errorf("stats: %+v", st)
	}
	if err := m.Resize("nope", 1); err == nil {
		t.Error("Resize of an unknown shape worked")
	}
	if _, err := New(rt, Options{Shapes: []Shape{{Spec: base, Size: 1}, {Spec: req, Size: 1}}}); err == nil {
		t.Error("two shapes with one key were accepted")
	}
	forced := base
	forced.Image.ForceRebuild = true
	if _, err := m.SetShape(forced, 1); err == nil {
		t.Error("a force-rebuild shape was accepted")
	}
}
