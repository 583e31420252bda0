package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/pool"
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
