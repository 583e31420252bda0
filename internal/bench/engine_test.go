package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/pool"
	"github.com/berth-dev/berth/internal/ports"
	"github.com/berth-dev/berth/internal/sandbox"
)

// TestBenchReportBothSides runs a short bench on the real engine, berth
// with a warm pool next to the docker CLI, and checks the JSON report: both
// sides, their ratios, where the time goes, and a burst that leaves
// nothing behind.
func TestBenchReportBothSides(t *testing.T) {
	c := env.Require(t)
	env.RequireImage(t, dockertest.BusyboxImage)
	dockerBin, err := exec.LookPath("docker")
	if err != nil {
		t.Skip("no docker CLI for the baseline")
	}
	dir := t.TempDir()
	res := image.NewResolver(c, image.Options{AgentBinary: env.AgentBinary, LockDir: filepath.Join(dir, "locks")})
	var rt *docker.Runtime
	alloc, err := ports.New(ports.Options{
		Dir: filepath.Join(dir, "ports"), BindAddr: "127.0.0.1",
		Alive: func(ctx context.Context, owner string) (bool, error) { return rt.Exists(ctx, owner) },
	})
	if err != nil {
		t.Fatal(err)
	}
	rt = docker.New(c, docker.Options{Images: res, Ports: alloc, StateDir: dir, DaemonHost: c.DaemonHost()})

	labels := maps.Clone(env.Labels())
	labels["berth.bench"] = env.RunID
	spec := sandbox.Spec{Image: sandbox.ImageSpec{Base: dockertest.BusyboxImage}, UserID: 1000, Labels: labels}
	m, err := pool.New(rt, pool.Options{Shapes: []pool.Shape{{Spec: spec, Size: 1}}, Labels: labels})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
		if _, err := m.Drain(context.Background(), ""); err != nil {
			t.Errorf("drain: %v", err)
		}
		if left := env.Containers(t); len(left) > 0 {
			t.Errorf("containers left after the bench: %v", left)
		}
	})

	target := Target{Runtime: rt, Agents: func(sb sandbox.Sandbox) *agentapi.Client { return rt.Agent(sb) }, Pool: m}
	var log bytes.Buffer
	opts := Options{N: 2, Spec: spec, Docker: dockerBin, Labels: labels, Log: &log, Burst: 4, Interval: 100 * time.Millisecond}
	var reps []Report
	for _, name := range []string{"sequential", "staggered", "burst"} {
		rep, err := Scenarios[name](context.Background(), target, opts)
		if err != nil {
			t.Fatalf("%s: %v\n%s", name, err, log.String())
		}
		reps = append(reps, rep)
	}
	var buf bytes.Buffer
	if err := Merge(reps...).WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var got Report
	if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
		t.Fatalf("report JSON: %v\n%s", err, buf.String())
	}
	metric := func(scenario, side, name string) Metric {
		for _, m := range got.Metrics {
			if m.Scenario == scenario && m.Side == side && m.Name == name {
				return m
			}
		}
		t.Errorf("report lacks %s %s %s", scenario, side, name)
		return Metric{}
	}
	for _, x := range []struct{ scenario, side, name string }{
		{"sequential", SideBerth, mColdReady}, {"sequential", SideBerth, mColdFirst},
		{"sequential", SideBerth, mWarmReady}, {"sequential", SideBerth, mWarmFirst},
		{"sequential", SideBerth, mExec}, {"sequential", SideBerth, mPause}, {"sequential", SideBerth, mResume},
		{"sequential", SideBerth, mWrite}, {"sequential", SideBerth, mRead},
		{"sequential", SideDocker, mRunExec}, {"sequential", SideDocker, mExec}, {"sequential", SideDocker, mPause},
		{"sequential", SideDocker, mUnpause}, {"sequential", SideDocker, mCpIn}, {"sequential", SideDocker, mCpOut},
		{"staggered", SideBerth, "create_to_ready"}, {"staggered", SideDocker, mRunExec},
		{"burst", SideBerth, "burst_create_to_first_command"}, {"burst", SideDocker, "burst_run_to_first_exec"},
	} {
		m := metric(x.scenario, x.side, x.name)
		if m.OK != m.N || m.N == 0 || m.P50MS <= 0 || m.Success != 1 {
			t.Errorf("%s %s %s: %+v\nbench log:\n%s", x.scenario, x.side, x.name, m, log.String())
		}
	}
	// A warm claim is a fraction of a cold create.
	if w, c := metric("sequential", SideBerth, mWarmReady), metric("sequential", SideBerth, mColdReady); w.P50MS >= c.P50MS/4 {
		t.Errorf("warm claim %.1f ms vs cold create %.1f ms", w.P50MS, c.P50MS)
	}
	ratios := map[string]Ratio{}
	for _, r := range got.Ratios {
		ratios[r.Scenario+" "+r.Berth+"/"+r.Docker] = r
	}
	for _, k := range []string{
		"sequential " + mColdReady + "/" + mRunExec, "sequential " + mWarmFirst + "/" + mRunExec,
		"sequential " + mExec + "/" + mExec, "sequential " + mResume + "/" + mUnpause, "sequential " + mRead + "/" + mCpOut,
		"burst burst_create_to_first_command/burst_run_to_first_exec",
	} {
		if r, ok := ratios[k]; !ok || r.P50 <= 0 {
			t.Errorf("ratio %s: %+v (have %v)", k, r, ratios)
		}
	}
	phases := map[string]bool{}
	for _, p := range got.Phases {
		phases[p.Path+" "+p.Name] = true
	}
	for _, k := range []string{"cold " + docker.PhaseStart, "cold " + docker.PhaseReady, "warm " + docker.PhaseClaim, "warm " + docker.PhaseAgentEnv} {
		if !phases[k] {
			t.Errorf("phases lack %s: %v", k, phases)
		}
	}
	leftovers := 0
	for _, c := range got.Counts {
		if c.Name == "leftovers" {
			leftovers++
			if c.Value != 0 {
				t.Errorf("burst left %g %s objects", c.Value, c.Side)
			}
		}
	}
	if leftovers != 2 {
		t.Errorf("burst counted leftovers on %d sides, want 2: %+v", leftovers, got.Counts)
	}
	var table bytes.Buffer
	if err := got.WriteTable(&table); err != nil || !bytes.Contains(table.Bytes(), []byte("warm_claim_to_ready")) {
		t.Errorf("table: %v\n%s", err, table.String())
	}
}
