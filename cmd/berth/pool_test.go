package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
	berthclient "github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/pool"
	"github.com/berth-dev/berth/internal/sandbox"
)

// poolCLI is berth with the pool commands, on a config with one pool.
type poolCLI struct {
	t      *testing.T
	config string
}

func newPoolCLI(t *testing.T) *poolCLI {
	env.Require(t)
	env.RequireImage(t, dockertest.BusyboxImage)
	dir := t.TempDir()
	t.Setenv("BERTH_STATE_DIR", filepath.Join(dir, "state"))
	t.Setenv("BERTH_AGENT_BINARY", env.AgentBinary)
	cfg := filepath.Join(dir, "berth.toml")
	body := "[sandbox]\nbase_container_image = \"" + dockertest.BusyboxImage + "\"\ntimeout = 60\n" +
		"runtime_startup_env_vars = { FROM_CONFIG = \"yes\" }\n\n" +
		"[pool]\n[[pool.shapes]]\nsize = 2\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c := &poolCLI{t: t, config: cfg}
	t.Cleanup(func() { c.run("pool", "drain") })
	return c
}

// app returns a berth app on the config, initialised, and a root with the
// pool commands (root.go registers them for the real binary).
func (c *poolCLI) app(out, errb *bytes.Buffer) (*app, *cobra.Command) {
	a := &app{stdout: out, stderr: errb, configPath: c.config}
	root := &cobra.Command{
		Use: "berth", SilenceUsage: true, SilenceErrors: true,
		PersistentPreRunE: func(*cobra.Command, []string) error { return a.init() },
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", c.config, "")
	root.AddCommand(a.poolCmds()...)
	return a, root
}

func (c *poolCLI) run(args ...string) (string, string, int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	a, root := c.app(&out, &errb)
	root.SetArgs(args)
	code := exitCode(&errb, root.ExecuteContext(context.Background()))
	if a.engine != nil {
		a.engine.Close()
	}
	return out.String(), errb.String(), code
}

func TestPoolCommands(t *testing.T) {
	c := newPoolCLI(t)
	out, errs, code := c.run("pool", "fill", "-o", "json")
	if code != 0 {
		t.Fatalf("pool fill: exit %d\n%s", code, errs)
	}
	var stats []pool.ShapeStats
	if err := json.Unmarshal([]byte(out), &stats); err != nil || len(stats) != 1 || stats[0].Size != 2 || stats[0].Ready != 2 {
		t.Fatalf("pool fill -o json: %v %s", err, out)
	}
	out, _, _ = c.run("pool", "ls")
	if !strings.Contains(out, stats[0].Key) || !strings.Contains(out, dockertest.BusyboxImage) {
		t.Errorf("pool ls:\n%s", out)
	}

	// Another installation on the engine (another state dir) with the same
	// shape: the pool is not its own to count, claim from or drain.
	home := os.Getenv("BERTH_STATE_DIR")
	t.Setenv("BERTH_STATE_DIR", filepath.Join(t.TempDir(), "other-state"))
	out, _, _ = c.run("pool", "ls", "-o", "json")
	var other []pool.ShapeStats
	if err := json.Unmarshal([]byte(out), &other); err != nil || len(other) != 1 || other[0].Ready != 0 {
		t.Errorf("pool ls of another installation: %v %s", err, out)
	}
	if out, errs, code := c.run("pool", "drain"); code != 0 || !strings.Contains(out, "0 pooled sandboxes removed") {
		t.Errorf("pool drain of another installation: %d %q %s", code, out, errs)
	}
	t.Setenv("BERTH_STATE_DIR", home)
	out, _, _ = c.run("pool", "ls", "-o", "json")
	if err := json.Unmarshal([]byte(out), &other); err != nil || len(other) != 1 || other[0].Ready != 2 {
		t.Errorf("after another installation's drain: %v %s", err, out)
	}

	// berth create claims a pooled sandbox of its shape: the config's spec
	// and the create's own name, env and labels.
	var o, e bytes.Buffer
	a, _ := c.app(&o, &e)
	if err := a.init(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if a.engine != nil {
			a.engine.Close()
		}
	}()
	ctx := context.Background()
	spec, err := a.specFromConfig()
	if err != nil {
		t.Fatal(err)
	}
	spec.Name = "pooled-" + env.RunID
	spec.Labels = env.Labels()
	spec.Env["FROM_FLAG"] = "1"
	sb, err := a.createSandbox(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := a.runtime(ctx)
	t.Cleanup(func() { rt.Remove(context.Background(), sb.ID) })
	got, err := rt.Get(ctx, spec.Name)
	if err != nil || got.ID != sb.ID || got.Owner != "local" || got.Labels[dockertest.Label] != env.RunID {
		t.Fatalf("claimed sandbox: %+v, %v", got, err)
	}
	if m, err := a.poolManager(ctx); err != nil {
		t.Fatal(err)
	} else if st, err := m.Census(ctx); err != nil || st[0].Ready != 1 {
		t.Errorf("after a claim, census %+v %v: want 1 ready", st, err)
	}
	outb, _, _, err := rt.Agent(sb).ExecOutput(ctx, agentapi.ExecRequest{Command: "echo $FROM_CONFIG $FROM_FLAG"})
	if err != nil || string(outb) != "yes 1\n" {
		t.Errorf("claimed sandbox env: %q %v", outb, err)
	}

	out, errs, code = c.run("pool", "drain")
	if code != 0 || !strings.Contains(out, "1 pooled sandboxes removed") {
		t.Errorf("pool drain: %d %q %s", code, out, errs)
	}
	if _, err := rt.Get(ctx, sb.ID); err != nil {
		t.Errorf("drain removed a claimed sandbox: %v", err)
	}
}

// Against a real `berth serve` with tenants and a pool of size 1: any
// tenant lists the pool with `berth pool ls --host`; a create of its shape
// claims from it; `berth pool resize` is refused to a tenant that is not an
// admin and, by the admin, empties the pool; the admin reads another
// tenant's audit records with `berth audit --tenant`, the other tenant may
// not read the admin's; fill and drain refuse to go through a server.
func TestPoolsAndAuditAgainstServer(t *testing.T) {
	const (
		adminToken = "admin-token-0123456789"
		userToken  = "user-token-0123456789ab"
	)
	c := newCLI(t)
	// A tmpfs named after the run makes the shape this test's own: no
	// other run's server adopts (or removes) its pooled sandboxes.
	tmpfs := "/pool-" + env.RunID
	c.addConfig("[pool]\n[[pool.shapes]]\nsize = 1\ntmpfs = [\"" + tmpfs + "\"]\n\n" +
		"[[server.tenants]]\nname = \"ops\"\ntoken = \"" + adminToken + "\"\nadmin = true\n\n" +
		"[[server.tenants]]\nname = \"dev\"\ntoken = \"" + userToken + "\"\n")
	srv := startServer(t, c, buildBerth(t, t.TempDir()))
	t.Setenv("BERTH_HOST", "http://"+srv.addr)
	t.Setenv("BERTH_TOKEN", userToken)

	// poolState reads `berth pool ls -o json` through the server.
	poolState := func() berthclient.PoolStats {
		t.Helper()
		var stats []berthclient.PoolStats
		out := c.ok("pool", "ls", "-o", "json")
		if err := json.Unmarshal([]byte(out), &stats); err != nil || len(stats) != 1 {
			t.Fatalf("pool ls -o json: %v\n%s", err, out)
		}
		return stats[0]
	}
	key := poolState().Key
	// The server's pooled containers carry no test label: whatever this
	// test leaves of them goes by id, once the server is gone (it would
	// refill them otherwise).
	t.Cleanup(func() {
		_ = srv.cmd.Process.Kill()
		srv.exited <- <-srv.exited
		for _, id := range pooledContainers(t, key) {
			if _, err := env.Client.ContainerRemove(context.Background(), id, client.ContainerRemoveOptions{Force: true}); err != nil {
				t.Errorf("cleanup: remove pooled container %s: %v", id, err)
			}
		}
	})
	// await polls the pool through `berth pool ls` until cond holds.
	await := func(what string, cond func(berthclient.PoolStats) bool) berthclient.PoolStats {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			st := poolState()
			if cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("pool %s: %s never happened: %+v", key, what, st)
			}
			time.Sleep(50 * time.Millisecond) // polling the server's pool
		}
	}
	st := await("filled to 1", func(st berthclient.PoolStats) bool { return st.Ready == 1 })
	if st.Size != 1 || st.Image != dockertest.BusyboxImage || st.Failures != 0 {
		t.Errorf("pool: %+v", st)
	}
	if out := c.ok("pool", "ls"); !strings.Contains(out, key) || !strings.Contains(out, dockertest.BusyboxImage) {
		t.Errorf("pool ls --host:\n%s", out)
	}

	// dev claims the pooled sandbox, and runs a command in it.
	id := strings.TrimSpace(c.ok("create", "--tmpfs", tmpfs, "--label", dockertest.Label+"="+env.RunID))
	t.Cleanup(func() { c.run("--host", "", "rm", "-f", id) })
	if st := poolState(); st.Claims != 1 {
		t.Errorf("the create of the pool's shape did not claim from it: %+v", st)
	}
	if out := c.ok("exec", id, "--", "echo", "from-dev"); out != "from-dev\n" {
		t.Errorf("exec in the claimed sandbox: %q", out)
	}

	// dev is no admin: no resize, nobody else's audit records.
	if _, errs, code := c.run("pool", "resize", key, "0"); code == 0 || !strings.Contains(errs, "403") || !strings.Contains(errs, "admin") {
		t.Errorf("pool resize by dev: exit %d, %q", code, errs)
	}
	for _, who := range []string{"ops", "*"} {
		if _, errs, code := c.run("audit", "--tenant", who); code == 0 || !strings.Contains(errs, "403") || !strings.Contains(errs, "tenant") {
			t.Errorf("audit --tenant %s by dev: exit %d, %q", who, code, errs)
		}
	}
	if out := c.ok("audit", "--tenant", "dev", "-o", "json"); !strings.Contains(out, "echo from-dev") {
		t.Errorf("dev's own audit records (--tenant dev):\n%s", out)
	}
	// Bad input is named, and nothing reaches the server.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"pool", "resize", "--", key, "-1"}, `invalid size "-1"`},
		{[]string{"pool", "resize", key, "1001"}, "0 to 1000"},
		{[]string{"pool", "resize", key}, "usage: berth pool resize SHAPE N"},
		{[]string{"pool", "fill"}, "runs here, on the local Docker engine"},
		{[]string{"pool", "drain", key}, "berth pool resize SHAPE 0"},
	} {
		if _, errs, code := c.run(tc.args...); code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("berth %v: exit %d, %q; want an error naming %q", tc.args, code, errs, tc.want)
		}
	}

	// ops, the admin: dev's records, and a resize to 0 that empties the
	// pool (the refill after the claim included).
	t.Setenv("BERTH_TOKEN", adminToken)
	var recs []berthclient.AuditRecord
	if err := json.Unmarshal([]byte(c.ok("audit", "--tenant", "dev", "-o", "json")), &recs); err != nil ||
		!slices.ContainsFunc(recs, func(r berthclient.AuditRecord) bool { return r.Tenant == "dev" && r.What == "echo from-dev" }) {
		t.Errorf("ops reads dev's records: %+v %v", recs, err)
	}
	if out := c.ok("audit", "-o", "json"); strings.Contains(out, "from-dev") {
		t.Errorf("ops's own records hold dev's:\n%s", out)
	}
	if _, errs, code := c.run("pool", "resize", "0000000000000000", "0"); code == 0 || !strings.Contains(errs, `"0000000000000000"`) {
		t.Errorf("resize of an unknown pool: exit %d, %q", code, errs)
	}
	if out := c.ok("pool", "resize", key, "0"); !strings.Contains(out, key) {
		t.Errorf("pool resize output:\n%s", out)
	}
	await("emptied", func(st berthclient.PoolStats) bool { return st.Size == 0 && st.Ready == 0 && st.Filling == 0 })
	// The engine agrees: no pooled container of the shape but dev's
	// claimed one is left (the server removes them in the background).
	claimed := claimedContainer(t, id)
	for deadline := time.Now().Add(30 * time.Second); ; {
		left := slices.DeleteFunc(pooledContainers(t, key), func(cid string) bool { return cid == claimed })
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pooled containers left after resize 0: %v", left)
		}
		time.Sleep(50 * time.Millisecond) // polling the engine for the removal
	}
	// The admin does not see dev's sandbox; dev's is untouched by the resize.
	if _, errs, code := c.run("inspect", id); code == 0 || !strings.Contains(errs, "no such sandbox") {
		t.Errorf("ops inspects dev's sandbox: exit %d, %q", code, errs)
	}
	t.Setenv("BERTH_TOKEN", userToken)
	if out := c.ok("exec", id, "--", "echo", "still"); out != "still\n" {
		t.Errorf("the claimed sandbox after resize 0: %q", out)
	}
}

// pooledContainers lists the engine's containers (all states) of the pool
// with shape key, claimed or not.
func pooledContainers(t *testing.T, key string) []string {
	t.Helper()
	res, err := env.Client.ContainerList(context.Background(), client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", docker.LabelPool+"="+key),
	})
	if err != nil {
		t.Fatalf("list pooled containers: %v", err)
	}
	ids := make([]string, len(res.Items))
	for i, it := range res.Items {
		ids[i] = it.ID
	}
	return ids
}

// claimedContainer is the container id of sandbox id.
func claimedContainer(t *testing.T, id string) string {
	t.Helper()
	res, err := env.Client.ContainerList(context.Background(), client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", sandbox.LabelID+"="+id),
	})
	if err != nil || len(res.Items) != 1 {
		t.Fatalf("container of sandbox %s: %v (%d found)", id, err, len(res.Items))
	}
	return res.Items[0].ID
}
