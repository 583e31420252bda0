package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/sandbox"
)

var env dockertest.Env

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m, &env)) }

// cli runs berth in-process as a user would, and returns its stdout,
// stderr and exit code.
type cli struct {
	t      *testing.T
	config string
}

func newCLI(t *testing.T) *cli {
	env.Require(t)
	env.RequireImage(t, dockertest.BusyboxImage)
	dir := t.TempDir()
	t.Setenv("BERTH_STATE_DIR", filepath.Join(dir, "state"))
	t.Setenv("BERTH_AGENT_BINARY", env.AgentBinary)
	cfg := filepath.Join(dir, "berth.toml")
	// An OpenHands-style config: other tables are ignored.
	body := "[core]\nworkspace_base = \"/tmp\"\n\n[sandbox]\nbase_container_image = \"" + dockertest.BusyboxImage + "\"\ntimeout = 60\n" +
		"runtime_startup_env_vars = { FROM_CONFIG = \"yes\" }\n"
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return &cli{t: t, config: cfg}
}

// addConfig appends TOML tables to the CLI's berth.toml.
func (c *cli) addConfig(toml string) {
	c.t.Helper()
	body, err := os.ReadFile(c.config)
	if err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(c.config, append(body, "\n"+toml...), 0o600); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cli) run(args ...string) (string, string, int) {
	c.t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs(append([]string{"--config", c.config}, args...))
	code := exitCode(&errb, root.ExecuteContext(context.Background()))
	return out.String(), errb.String(), code
}

func (c *cli) ok(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("berth %s: exit %d\n%s", strings.Join(args, " "), code, errs)
	}
	return out
}

func TestCLIEndToEnd(t *testing.T) {
	c := newCLI(t)
	label := dockertest.Label + "=" + env.RunID
	id := strings.TrimSpace(c.ok("create", "--name", "cli-"+env.RunID, "--label", label, "-e", "FROM_FLAG=1", "--security-policy", "confirm"))
	t.Cleanup(func() { c.run("rm", "-f", id) })

	var rec sandbox.Sandbox
	if err := json.Unmarshal([]byte(c.ok("inspect", "-o", "json", "cli-"+env.RunID)), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.ID != id || rec.Status != sandbox.StatusRunning || rec.State != "running" || rec.URLs["agent"] == "" ||
		rec.SecurityPolicy != sandbox.PolicyConfirm {
		t.Errorf("inspect: %+v", rec)
	}
	if out := c.ok("inspect", id); !strings.Contains(out, "security_policy:") || !strings.Contains(out, "confirm") {
		t.Errorf("inspect does not show the sandbox's security policy:\n%s", out)
	}
	var raw map[string]any
	json.Unmarshal([]byte(c.ok("inspect", "-o", "json", id)), &raw)
	for _, k := range []string{"id", "name", "status", "state", "exit_code", "oom_killed", "image", "runtime_image", "created_at", "ports", "urls", "labels"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("inspect -o json lacks %q", k)
		}
	}
	if strings.Contains(c.ok("inspect", "-o", "json", id), rec.Key) && rec.Key != "" {
		t.Error("inspect prints the sandbox key")
	}

	// exec streams both streams, passes env from config and flags, and exits
	// with the command's code.
	out, errs, code := c.run("exec", "-e", "X=42", id[:8], "--", "sh", "-c", `echo "$FROM_CONFIG $FROM_FLAG $X"; echo oops >&2; exit 3`)
	if code != 3 || out != "yes 1 42\n" || errs != "oops\n" {
		t.Errorf("exec: exit %d stdout %q stderr %q", code, out, errs)
	}
	if out := c.ok("exec", "--cwd", "/tmp", id, "--", "pwd"); out != "/tmp\n" {
		t.Errorf("exec --cwd: %q", out)
	}
	if _, errs, code := c.run("exec", "--timeout", "300ms", id, "--", "sleep", "30"); code != 124 || !strings.Contains(errs, "timed out") {
		t.Errorf("exec --timeout: exit %d, stderr %q", code, errs)
	}
	if _, errs, code := c.run("exec", "nope-"+env.RunID, "--", "true"); code != 125 || !strings.Contains(errs, "no such sandbox") {
		t.Errorf("exec in a missing sandbox: exit %d, %q", code, errs)
	}

	if out := c.ok("ls"); !strings.Contains(out, id) || !strings.Contains(out, "RUNNING") {
		t.Errorf("ls: %q", out)
	}
	c.ok("pause", id)
	if out := c.ok("ls", "-a"); !strings.Contains(out, "PAUSED") {
		t.Errorf("ls -a after pause: %q", out)
	}
	if _, errs, code := c.run("exec", id, "--", "true"); code != 125 || !strings.Contains(errs, "resume") {
		t.Errorf("exec in a paused sandbox: exit %d, %q", code, errs)
	}
	c.ok("resume", id)
	c.ok("stop", id)
	if out := c.ok("inspect", id); !strings.Contains(out, "exited") {
		t.Errorf("inspect after stop: %q", out)
	}
	c.ok("resume", id)
	if out := c.ok("exec", id, "--", "echo", "back"); out != "back\n" {
		t.Errorf("exec after resume: %q", out)
	}
	if out := c.ok("logs", "--tail", "50", id); !strings.Contains(out, "agent") {
		t.Errorf("logs: %q", out)
	}
	c.ok("rm", id)
	if _, errs, code := c.run("rm", id); code != 1 || !strings.Contains(errs, "no such sandbox") {
		t.Errorf("rm of a removed sandbox: exit %d %q", code, errs)
	}
	c.ok("rm", "-f", id)
	if n := len(env.Containers(t)); n != 0 {
		t.Errorf("%d containers left", n)
	}
}

func TestCLIBadInput(t *testing.T) {
	c := newCLI(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"create", "-e", "NOEQUALS"}, `invalid -e "NOEQUALS"`},
		{[]string{"create", "--label", "=x"}, `invalid --label "=x"`},
		{[]string{"create", "--name", "bad name"}, `name "bad name"`},
		{[]string{"create", "-o", "yaml"}, `invalid --output "yaml"`},
		{[]string{"logs", "--tail", "ten", "x"}, `invalid --tail "ten"`},
		{[]string{"exec", "x", "true"}, "usage: berth exec"},
		{[]string{"create", "--memory", "lots"}, `invalid --memory "lots"`},
		{[]string{"create", "--memory", "1k"}, `invalid --memory "1k"`},
		{[]string{"create", "--cpus", "-1"}, "invalid --cpus -1"},
		{[]string{"create", "--pids-limit", "0"}, "invalid --pids-limit 0"},
		{[]string{"create", "-p", "http"}, `invalid -p "http"`},
		{[]string{"create", "--gpus", " "}, `invalid --gpus " "`},
		{[]string{"create", "--network", "wifi"}, `network "wifi"`},
		{[]string{"create", "--app-ports", "3"}, "app ports 3"},
		{[]string{"create", "--network", "none", "--vscode"}, `network "none" publishes no ports`},
	}
	for _, tc := range cases {
		_, errs, code := c.run(tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("berth %v: exit %d, stderr %q; want an error with %q", tc.args, code, errs, tc.want)
		}
	}
	// A bad config file is named with the key at fault.
	bad := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(bad, []byte("[sandbox]\nbase_image = \"x\"\n"), 0o600)
	c.config = bad
	if _, errs, code := c.run("ls"); code == 0 || !strings.Contains(errs, "base_image") {
		t.Errorf("unknown config key: exit %d %q", code, errs)
	}
	if n := len(env.Containers(t)); n != 0 {
		t.Errorf("bad input left %d containers", n)
	}
}
