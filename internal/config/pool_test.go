package config

import (
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/sandbox"
)

func TestPoolTable(t *testing.T) {
	c, err := Parse([]byte(`
[sandbox]
base_container_image = "debian:bookworm-slim"
user_id = 1000

[pool]
concurrency = 2

[[pool.shapes]]
image = "busybox:berth-test"
size = 3
memory = "512m"
cpus = 1.5
network = "none"
volumes = ["/src:/workspace/src:ro"]
tmpfs = ["/scratch:size=64m"]
read_only = true
user_id = 0

[[pool.shapes]]
size = 1
`), "berth.toml")
	if err != nil {
		t.Fatal(err)
	}
	p := c.Pool
	if p.Concurrency != 2 || len(p.Shapes) != 2 {
		t.Fatalf("pool: %+v", p)
	}
	s := p.Shapes[0]
	if s.Size != 3 || s.Image != "busybox:berth-test" || s.Memory != 512<<20 || s.CPUs != 1.5 || s.Network != "none" ||
		len(s.Volumes) != 1 || len(s.Tmpfs) != 1 || s.ReadOnly == nil || !*s.ReadOnly || s.UserID == nil || *s.UserID != 0 {
		t.Errorf("shape 0: %+v", s)
	}
	spec := sandbox.Spec{Image: sandbox.ImageSpec{Base: c.Sandbox.BaseContainerImage}, UserID: c.Sandbox.UserID}
	s.Apply(&spec)
	if spec.Image.Base != "busybox:berth-test" || spec.Limits.Memory != 512<<20 || spec.Limits.NanoCPUs != 1.5e9 ||
		spec.Network != "none" || !spec.ReadOnlyRootfs || spec.UserID != 0 || spec.Volumes[0] != "/src:/workspace/src:ro" {
		t.Errorf("applied: %+v", spec)
	}
	// A shape that sets nothing but its size is the [sandbox] spec.
	plain := sandbox.Spec{Image: sandbox.ImageSpec{Base: "debian:bookworm-slim"}, UserID: 1000}
	p.Shapes[1].Apply(&plain)
	if plain.Image.Base != "debian:bookworm-slim" || plain.UserID != 1000 || plain.Limits.Memory != 0 {
		t.Errorf("size-only shape changed the spec: %+v", plain)
	}
	if d := Default(); d.Pool.Concurrency != 0 || len(d.Pool.Shapes) != 0 {
		t.Errorf("default pool: %+v", d.Pool)
	}
}

func TestPoolTableErrors(t *testing.T) {
	_, err := Parse([]byte(`
[pool]
concurency = 1
[[pool.shapes]]
image = "UPPER:case:bad"
memory = "1k"
cpus = -1
network = "wifi"
sizee = 3
publish = [0]
app_ports = 3
`), "berth.toml")
	if err == nil {
		t.Fatal("bad [pool] accepted")
	}
	for _, want := range []string{
		`berth.toml: unknown key "pool.concurency" (did you mean "concurrency"?)`,
		`pool.shapes[0].image: must be an image reference`,
		`pool.shapes[0].memory: must be a size of at least 6m`,
		`pool.shapes[0].cpus: must be a positive number`,
		`pool.shapes[0].network: must be "bridge"`,
		`unknown key "pool.shapes[0].sizee" (did you mean "size"?)`,
		`pool.shapes[0].size: is required`,
		`pool.shapes[0].publish: must be container ports`,
		`pool.shapes[0].app_ports: must be 0, 1 or 2`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if _, err := Parse([]byte("pool = 3\n"), "x"); err == nil || !strings.Contains(err.Error(), "pool: must be a table") {
		t.Errorf("pool = 3: %v", err)
	}
}
