package pool

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/sandbox"
)

func execOut(t *testing.T, rt *docker.Runtime, sb sandbox.Sandbox, command string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, errb, exit, err := rt.Agent(sb).ExecOutput(ctx, agentapi.ExecRequest{Command: command})
	if err != nil || exit.ExitCode != 0 {
		t.Fatalf("exec %q: %v (exit %d, stderr %q)", command, err, exit.ExitCode, errb)
	}
	return string(out)
}

// recordJSON is a record as `berth inspect -o json` prints it, without the
// fields that differ between any two sandboxes.
func recordJSON(t *testing.T, sb sandbox.Sandbox) map[string]any {
	t.Helper()
	b, err := json.Marshal(sb)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"id", "container_id", "created_at", "ports", "urls", "name"} {
		delete(m, k)
	}
	return m
}

// containerShape is what Docker runs for a sandbox, less what is its own
// (id, ports, name, socket dir) and its env (a claim gives env to the
// agent) and labels (a claim records them next to the sandbox).
func containerShape(t *testing.T, cid, id string) map[string]any {
	t.Helper()
	res, err := env.Client.ContainerInspect(context.Background(), cid, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Container
	h := *c.HostConfig
	h.PortBindings, h.Binds = nil, nil
	cfg := *c.Config
	cfg.Env, cfg.Labels, cfg.ExposedPorts, cfg.Hostname = nil, nil, nil, ""
	b, err := json.Marshal(map[string]any{"host": h, "config": cfg, "state": c.State.Status, "mounts": len(c.Mounts)})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal([]byte(strings.ReplaceAll(string(b), id, "ID")), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestClaimIsIndistinguishableFromCold(t *testing.T) {
	mach := newMachine(t)
	rt := mach.runtime(t)
	ctx := context.Background()
	m := newManager(t, rt, Shape{Spec: busybox(), Size: 1})
	if err := m.Fill(ctx); err != nil {
		t.Fatalf("Fill: %v", err)
	}
	pooled := pooledIDs(t, rt)
	if len(pooled) != 1 {
		t.Fatalf("pooled sandboxes after Fill: %v", pooled)
	}
	// Hidden from everyone: not listed, not found, not counted.
	for _, o := range []sandbox.ListOptions{{All: true}, {All: true, Owner: "alice"}, {All: true, Label: map[string]string{"team": "core"}}} {
		list, err := rt.List(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		for _, sb := range list {
			if sb.ID == pooled[0] {
				t.Errorf("List(%+v) shows the pooled sandbox", o)
			}
		}
	}
	if _, err := rt.Get(ctx, pooled[0]); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Get(pooled) = %v, want ErrNotFound", err)
	}
	if list, err := rt.List(ctx, sandbox.ListOptions{All: true, Owner: docker.OwnerPool}); err != nil || len(list) != 1 || list[0].ID != pooled[0] {
		t.Errorf("List(owner pool) = %v, %v: want the pooled sandbox", list, err)
	}

	// One warm, one cold, for the same request but the name: the pool has
	// one sandbox, the first create claims it. Both ask for a security
	// policy of their own, which the claim carries as it does the name.
	strict := func(name string) sandbox.Spec {
		s := request("alice", name)
		s.SecurityPolicy = sandbox.PolicyDeny
		return s
	}
	claimed, warm, err := m.Create(ctx, strict("warm-"+env.RunID))
	if err != nil || !warm {
		t.Fatalf("first create: warm=%v err=%v; want a claim", warm, err)
	}
	cold, warm, err := m.Create(ctx, strict("cold-"+env.RunID))
	if err != nil || warm {
		t.Fatalf("second create: warm=%v err=%v; want a cold create (the pool is empty)", warm, err)
	}
	if claimed.ID != pooled[0] {
		t.Errorf("claimed %s, the pool had %s", claimed.ID, pooled[0])
	}

	// The records match field by field, from Create, Get and List.
	if a, b := recordJSON(t, claimed), recordJSON(t, cold); !equalJSON(a, b) {
		t.Errorf("records differ:\nclaimed %v\ncold    %v", a, b)
	}
	for _, sb := range []sandbox.Sandbox{claimed, cold} {
		got, err := rt.Get(ctx, sb.Name)
		if err != nil || got.ID != sb.ID {
			t.Fatalf("Get(%q) = %s, %v", sb.Name, got.ID, err)
		}
		if a, b := recordJSON(t, got), recordJSON(t, sb); !equalJSON(a, b) || got.Key != sb.Key || !got.CreatedAt.Equal(sb.CreatedAt) {
			t.Errorf("Get(%s) differs from the create's record:\n%v\n%v", sb.Name, a, b)
		}
	}
	if time.Since(claimed.CreatedAt) > time.Minute || claimed.Owner != "alice" || claimed.Labels["team"] != "core" ||
		claimed.Status != sandbox.StatusRunning || claimed.SecurityPolicy != sandbox.PolicyDeny {
		t.Errorf("claimed record: %+v", claimed)
	}
	list, err := rt.List(ctx, sandbox.ListOptions{Owner: "alice", Label: map[string]string{"team": "core"}})
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, sb := range list {
		ids = append(ids, sb.ID)
	}
	if !slices.Contains(ids, claimed.ID) || !slices.Contains(ids, cold.ID) {
		t.Errorf("List(owner alice, team core) = %v, want both %s and %s", ids, claimed.ID, cold.ID)
	}
	for _, sb := range list {
		if sb.SecurityPolicy != sandbox.PolicyDeny {
			t.Errorf("List: sandbox %s has security policy %q, want deny", sb.ID, sb.SecurityPolicy)
		}
	}
	if list, _ := rt.List(ctx, sandbox.ListOptions{Owner: "bob"}); len(list) != 0 {
		t.Errorf("List(owner bob) = %v", list)
	}
	if list, _ := rt.List(ctx, sandbox.ListOptions{Owner: docker.OwnerPool}); len(list) != 0 {
		t.Errorf("a claimed sandbox is still listed as the pool's: %v", list)
	}
	// What Docker runs is the same, and the claimed container now has a
	// sandbox's name.
	if a, b := containerShape(t, claimed.ContainerID, claimed.ID), containerShape(t, cold.ContainerID, cold.ID); !equalJSON(a, b) || len(a) == 0 {
		t.Errorf("containers differ:\nclaimed %v\ncold    %v", a, b)
	}
	res, err := env.Client.ContainerInspect(ctx, claimed.ContainerID, client.ContainerInspectOptions{})
	if err != nil || res.Container.Name != "/berth-"+claimed.ID {
		t.Errorf("claimed container name %q, %v", res.Container.Name, err)
	}
	// The processes see the same environment, user and workdir.
	probe := "echo $GREETING $TENANT_TOKEN; id -u; pwd; env | grep -c ^BERTH_ || true"
	if a, b := execOut(t, rt, claimed, probe), execOut(t, rt, cold, probe); a != b || !strings.HasPrefix(a, "hello alice secret-alice\n1000\n/workspace\n0\n") {
		t.Errorf("claimed sees %q, cold sees %q", a, b)
	}
	// Stopped and resumed (a new agent), both keep their env.
	for _, sb := range []sandbox.Sandbox{claimed, cold} {
		if _, err := rt.Stop(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
		if _, err := rt.Resume(ctx, sb.ID); err != nil {
			t.Fatal(err)
		}
	}
	if a, b := execOut(t, rt, claimed, probe), execOut(t, rt, cold, probe); a != b || !strings.HasPrefix(a, "hello alice secret-alice\n") {
		t.Errorf("after stop and resume: claimed sees %q, cold sees %q", a, b)
	}
	// The pool's Create without Run found nothing more to claim.
	if st := m.Stats()[0]; st.Claims != 1 || st.Misses != 1 {
		t.Errorf("stats: %+v", st)
	}
	// Remove takes the claim record with the sandbox.
	if err := rt.Remove(ctx, claimed.Name); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Get(ctx, claimed.ID); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("Get after Remove = %v", err)
	}
}

func equalJSON(a, b map[string]any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestClaimRaceHasOneWinner(t *testing.T) {
	mach := newMachine(t)
	ctx := context.Background()
	rt := mach.runtime(t)
	if err := newManager(t, rt, Shape{Spec: busybox(), Size: 1}).Fill(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := rt.ListPooled(ctx, "")
	if err != nil || len(list) != 1 {
		t.Fatalf("pooled: %v %v", list, err)
	}
	rec, err := rt.Inspect(ctx, list[0].Sandbox.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	// Two runtimes (two berth processes of the machine) claim the same
	// sandbox at once, many times over: exactly one wins.
	rts := []*docker.Runtime{mach.runtime(t), mach.runtime(t)}
	var wg sync.WaitGroup
	results := make([]error, 2)
	start := make(chan struct{})
	for i := range 2 {
		wg.Go(func() {
			<-start
			_, results[i] = rts[i].Claim(ctx, rec, request("alice", ""))
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for _, err := range results {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, docker.ErrClaimed):
			t.Errorf("loser's error %v, want ErrClaimed", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d claims won: %v", won, results)
	}

	// Through two managers without Run (two CLI processes): one claims the
	// pooled sandbox, the other falls back to a cold create; both succeed.
	if err := newManager(t, rt, Shape{Spec: busybox(), Size: 1}).Fill(ctx); err != nil {
		t.Fatal(err)
	}
	ms := []*Manager{newManager(t, rts[0], Shape{Spec: busybox(), Size: 1}), newManager(t, rts[1], Shape{Spec: busybox(), Size: 1})}
	warm := make([]bool, 2)
	errs := make([]error, 2)
	start = make(chan struct{})
	for i := range 2 {
		wg.Go(func() {
			<-start
			_, warm[i], errs[i] = ms[i].Create(ctx, request("bob", ""))
		})
	}
	close(start)
	wg.Wait()
	if errs[0] != nil || errs[1] != nil || warm[0] == warm[1] {
		t.Fatalf("racing managers: warm %v, errors %v; want one warm, one cold, no error", warm, errs)
	}
	if ids := pooledIDs(t, rt); len(ids) != 0 {
		t.Errorf("pooled sandboxes left: %v", ids)
	}
	if list, _ := rt.List(ctx, sandbox.ListOptions{Owner: "bob"}); len(list) != 2 {
		t.Errorf("bob has %d sandboxes, want 2", len(list))
	}
}

func TestRunRefillsAndShapeMismatchGoesCold(t *testing.T) {
	mach := newMachine(t)
	ctx := context.Background()
	rt := mach.runtime(t)
	m := newManager(t, rt, Shape{Spec: busybox(), Size: 2})
	key := m.Keys()[0]
	run(t, m)
	waitReady(t, m, key, 2)
	before := pooledIDs(t, rt)

	// Another shape (a memory limit) goes cold and leaves the pool alone.
	other := request("alice", "")
	other.Limits.Memory = 64 << 20
	sb, warm, err := m.Create(ctx, other)
	if err != nil || warm {
		t.Fatalf("create of another shape: warm=%v err=%v", warm, err)
	}
	if sb.Owner != "alice" {
		t.Errorf("cold record: %+v", sb)
	}
	if got := pooledIDs(t, rt); !slices.Equal(got, before) {
		t.Errorf("pool changed by a cold create: %v → %v", before, got)
	}

	// A name in use: the caller's error, and the pool keeps its sandbox.
	named := request("alice", "taken-"+env.RunID)
	if _, _, err := m.Create(ctx, named); err != nil {
		t.Fatal(err)
	}
	waitReady(t, m, key, 2)
	if _, _, err := m.Create(ctx, named); !errors.Is(err, sandbox.ErrConflict) {
		t.Errorf("claim with a taken name = %v, want ErrConflict", err)
	}
	if st := waitReady(t, m, key, 2); st.Claims != 1 {
		t.Errorf("stats after a refused claim: %+v", st)
	}

	// Claims are warm, and every one is replaced in the background.
	for i := range 3 {
		sb, warm, err := m.Create(ctx, request("alice", ""))
		if err != nil || !warm {
			t.Fatalf("claim %d: warm=%v err=%v", i, warm, err)
		}
		if out := execOut(t, rt, sb, "echo $GREETING"); out != "hello alice\n" {
			t.Errorf("claimed sandbox env: %q", out)
		}
		waitReady(t, m, key, 2)
	}
	// Resize down removes the extra sandboxes; up fills again.
	if err := m.Resize(key, 1); err != nil {
		t.Fatal(err)
	}
	waitReady(t, m, key, 1)
	deadline := time.Now().Add(30 * time.Second)
	for len(pooledIDs(t, rt)) != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if ids := pooledIDs(t, rt); len(ids) != 1 {
		t.Errorf("after resize to 1, the engine has pooled %v", ids)
	}
	if err := m.Resize("nope", 1); err == nil {
		t.Error("Resize of an unknown shape succeeded")
	}
}

func TestReadoptionAfterRestart(t *testing.T) {
	mach := newMachine(t)
	ctx := context.Background()
	rt := mach.runtime(t)
	first := newManager(t, rt, Shape{Spec: busybox(), Size: 2})
	if err := first.Fill(ctx); err != nil {
		t.Fatal(err)
	}
	// A pool of a shape that is no longer configured, and a pooled sandbox
	// that was stopped: a new manager removes both.
	gone := busybox()
	gone.Limits.PidsLimit = 123
	if err := newManager(t, rt, Shape{Spec: gone, Size: 1}).Fill(ctx); err != nil {
		t.Fatal(err)
	}
	list, err := rt.ListPooled(ctx, first.Keys()[0])
	if err != nil || len(list) != 2 {
		t.Fatalf("pooled: %v, %v", list, err)
	}
	kept := list[0].Sandbox.ID
	timeout := 1
	if _, err := env.Client.ContainerStop(ctx, list[1].Sandbox.ContainerID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatal(err)
	}

	// berth restarts: a new runtime and manager over the same engine.
	rt2 := mach.runtime(t)
	second := newManager(t, rt2, Shape{Spec: busybox(), Size: 2})
	key := second.Keys()[0]
	run(t, second)
	waitReady(t, second, key, 2)
	ids := pooledIDs(t, rt2)
	if len(ids) != 2 || !slices.Contains(ids, kept) || slices.Contains(ids, list[1].Sandbox.ID) {
		t.Errorf("after restart the pool has %v: want %s adopted, %s replaced", ids, kept, list[1].Sandbox.ID)
	}
	if other, _ := rt2.ListPooled(ctx, ShapeKey(mustNormalize(t, rt2, gone))); len(other) != 0 {
		t.Errorf("pooled sandboxes of an unconfigured shape survived: %v", other)
	}
	// The adopted sandbox claims like a fresh one (its agent still takes
	// the env).
	sb, warm, err := second.Create(ctx, request("carol", ""))
	if err != nil || !warm || sb.ID != kept {
		t.Fatalf("claim after restart: %s warm=%v err=%v; want %s (the oldest)", sb.ID, warm, err, kept)
	}
	if out := execOut(t, rt2, sb, "echo $GREETING"); out != "hello carol\n" {
		t.Errorf("env after claim: %q", out)
	}
	// A pooled sandbox claimed behind the manager's back (another process)
	// leaves its pool at the next resync, and is replaced.
	other, err := rt.ListPooled(ctx, key)
	if err != nil || len(other) == 0 {
		t.Fatalf("pooled: %v, %v", other, err)
	}
	full, err := rt.Inspect(ctx, other[0].Sandbox.ContainerID)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rt.Claim(ctx, full, request("dave", "")); err != nil {
		t.Fatalf("claim from another process: %v", err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		ids := pooledIDs(t, rt2)
		st := second.Stats()[0]
		if len(ids) == 2 && !slices.Contains(ids, full.ID) && st.Ready == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after an outside claim the engine has %v pooled, the manager %+v", ids, st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The manager no longer offers the sandbox the other process took.
	if sb, warm, err := second.Create(ctx, request("erin", "")); err != nil || !warm || sb.ID == full.ID {
		t.Errorf("claim after the resync: %s warm=%v err=%v", sb.ID, warm, err)
	}
}

func mustNormalize(t *testing.T, rt *docker.Runtime, s sandbox.Spec) sandbox.Spec {
	t.Helper()
	n, err := rt.Normalize(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRuntimeWrapperAndReservedNames(t *testing.T) {
	mach := newMachine(t)
	ctx := context.Background()
	rt := mach.runtime(t)
	m := newManager(t, rt, Shape{Spec: busybox(), Size: 1})
	if err := m.Fill(ctx); err != nil {
		t.Fatal(err)
	}
	// A caller cannot pose as the pool.
	bad := request("pool", "")
	if _, err := m.Runtime().Create(ctx, bad); !errors.Is(err, sandbox.ErrInvalidSpec) {
		t.Errorf("create as owner pool = %v, want ErrInvalidSpec", err)
	}
	bad = request("alice", "")
	bad.Labels = maps.Clone(bad.Labels)
	bad.Labels[docker.LabelPool] = "x"
	if _, err := m.Runtime().Create(ctx, bad); !errors.Is(err, sandbox.ErrInvalidSpec) {
		t.Errorf("create with label %s = %v, want ErrInvalidSpec", docker.LabelPool, err)
	}
	if ids := pooledIDs(t, rt); len(ids) != 1 {
		t.Fatalf("refused creates touched the pool: %v", ids)
	}
	// The wrapper is a sandbox.Runtime whose Create claims.
	sb, err := m.Runtime().Create(ctx, request("alice", ""))
	if err != nil || sb.Owner != "alice" {
		t.Fatalf("wrapper create: %+v, %v", sb, err)
	}
	if st := m.Stats()[0]; st.Claims != 1 {
		t.Errorf("wrapper create did not claim: %+v", st)
	}
	// Drain removes pooled sandboxes only.
	if err := m.Fill(ctx); err != nil {
		t.Fatal(err)
	}
	if n, err := m.Drain(ctx, ""); err != nil || n != 1 {
		t.Errorf("Drain = %d, %v", n, err)
	}
	if _, err := rt.Get(ctx, sb.ID); err != nil {
		t.Errorf("Drain touched a claimed sandbox: %v", err)
	}
}
