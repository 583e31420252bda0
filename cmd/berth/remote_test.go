package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/sandbox"
)

// The CLI drives a real `berth serve` process with --host, with the same
// output and exit codes as locally; SIGTERM stops the server and leaves
// its sandboxes running.
func TestCLIAgainstServer(t *testing.T) {
	c := newCLI(t)
	srv := startServer(t, c, buildBerth(t, t.TempDir()), "--debug")
	addr, exited, logs := srv.addr, srv.exited, srv.logs

	t.Setenv("BERTH_HOST", "http://"+addr)
	label := dockertest.Label + "=" + env.RunID
	id := strings.TrimSpace(c.ok("create", "--label", label, "-e", "WHERE=remote"))
	t.Cleanup(func() { c.run("--host", "", "rm", "-f", id) }) // locally: the server may be gone by then

	out, errs, code := c.run("exec", id, "--", "sh", "-c", `echo "$WHERE"; echo oops >&2; exit 3`)
	if code != 3 || out != "remote\n" || errs != "oops\n" {
		t.Errorf("remote exec: exit %d stdout %q stderr %q", code, out, errs)
	}
	if _, errs, code := c.run("exec", "--timeout", "300ms", id, "--", "sleep", "30"); code != 124 || !strings.Contains(errs, "timed out") {
		t.Errorf("remote exec --timeout: exit %d, %q", code, errs)
	}
	if out := c.ok("exec", "--session", "s", id, "--", "cd /tmp && pwd"); out != "/tmp\n" {
		t.Errorf("remote session: %q", out)
	}
	var rec sandbox.Sandbox
	if err := json.Unmarshal([]byte(c.ok("inspect", "-o", "json", id)), &rec); err != nil || rec.ID != id || rec.Status != sandbox.StatusRunning {
		t.Errorf("remote inspect: %+v %v", rec, err)
	}
	if _, errs, code := c.run("exec", "nope-"+env.RunID, "--", "true"); code != 125 || !strings.Contains(errs, "no such sandbox") {
		t.Errorf("remote exec in a missing sandbox: exit %d %q", code, errs)
	}
	c.ok("pause", id)
	c.ok("resume", id)

	// The same sandbox, seen locally (same engine, labels are the truth).
	t.Setenv("BERTH_HOST", "")
	if out := c.ok("ls"); !strings.Contains(out, id) {
		t.Errorf("local ls does not show the server's sandbox: %q", out)
	}

	// SIGTERM: the server exits 0 and the sandbox keeps running.
	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		exited <- err // for the cleanup
		if err != nil {
			t.Errorf("server exit: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop on SIGTERM")
	}
	if out := c.ok("inspect", id); !strings.Contains(out, "RUNNING") {
		t.Errorf("sandbox after the server stopped: %q", out)
	}
	c.ok("rm", id)
	// The remote calls went through the server (it logs each request).
	b, _ := os.ReadFile(logs)
	if !strings.Contains(string(b), id) {
		t.Errorf("the server's log does not mention sandbox %s:\n%s", id, b)
	}
	// With --debug the sandbox's container log streams into the server's.
	if !strings.Contains(string(b), "container log") || !strings.Contains(string(b), "exec start") {
		t.Errorf("the server's debug log holds no container log lines:\n%s", b)
	}
}

// serveProc is a `berth serve` process of a test.
type serveProc struct {
	cmd    *exec.Cmd
	addr   string
	exited chan error
	logs   string
}

// startServer runs `berth serve` with the CLI's config on a free loopback
// port and waits until it answers; it is killed when the test ends.
func startServer(t *testing.T, c *cli, bin string, flags ...string) *serveProc {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, append([]string{"--config", c.config, "serve", "--addr", addr}, flags...)...)
	cmd.Env = os.Environ() // BERTH_STATE_DIR and BERTH_AGENT_BINARY from newCLI
	logs, err := os.Create(filepath.Join(t.TempDir(), "serve.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &serveProc{cmd: cmd, addr: addr, exited: make(chan error, 1), logs: logs.Name()}
	go func() { s.exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		s.exited <- <-s.exited
	})
	waitHealthy(t, "http://"+addr+"/healthz", s.exited, s.logs)
	return s
}

// waitHealthy polls the server's /healthz until it answers, the process
// exits, or a deadline passes.
func waitHealthy(t *testing.T, url string, exited <-chan error, logPath string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case err := <-exited:
			b, _ := os.ReadFile(logPath)
			t.Fatalf("berth serve exited (%v):\n%s", err, b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("berth serve never answered %s:\n%s", url, b)
		}
	}
}

// Against a real sandbox through a real server: deny refuses a dangerous
// command and nothing of it runs; audit records and runs; the trail holds
// the exit codes of execs and background processes, and survives SIGKILL
// of the server; a sandbox's own policy cannot loosen the server's.
func TestSecurityPolicyEndToEnd(t *testing.T) {
	c := newCLI(t)
	c.addConfig("[security]\npolicy = \"deny\"\n")
	bin := buildBerth(t, t.TempDir())
	srv := startServer(t, c, bin)
	t.Setenv("BERTH_HOST", "http://"+srv.addr)
	id := strings.TrimSpace(c.ok("create", "--label", dockertest.Label+"="+env.RunID))
	t.Cleanup(func() { c.run("--host", "", "rm", "-f", id) }) // locally: the server may be gone by then
	c.ok("exec", id, "--", "sh", "-c", "touch /workspace/keep")

	// `rm -rf /` is refused before it reaches the sandbox: keep survives
	// although the same line would have deleted it first.
	_, errs, code := c.run("exec", id, "--", "sh", "-c", "rm -rf /workspace/keep; rm -rf /")
	if code == 0 || !strings.Contains(errs, "rm-root") {
		t.Errorf("denied exec: exit %d, stderr %q; want a refusal naming rule rm-root", code, errs)
	}
	if out := c.ok("exec", id, "--", "ls", "/workspace"); out != "keep\n" {
		t.Errorf("after the refused command /workspace holds %q: part of it ran", out)
	}
	// A harmless look-alike runs.
	c.ok("exec", id, "--", "sh", "-c", "mkdir -p ./build && rm -rf ./build")

	// Exit codes: of an exec (through the agent proxy, as the CLI runs it)
	// and, once it exits, of a background process.
	if _, errs, code := c.run("exec", id, "--", "sh", "-c", "exit 7"); code != 7 {
		t.Errorf("exec exit 7: exit %d, %q", code, errs)
	}
	c.ok("exec", "-d", id, "--", "sh", "-c", "sleep 0.2; exit 5")
	type rec struct {
		Action   string `json:"action"`
		What     string `json:"what"`
		ExitCode *int   `json:"exit_code"`
	}
	exitOf := func(recs []rec, action, what string) *int {
		for _, r := range recs {
			if r.Action == action && r.What == what {
				return r.ExitCode
			}
		}
		return nil
	}
	var recs []rec
	for deadline := time.Now().Add(30 * time.Second); ; {
		recs = nil
		if err := json.Unmarshal([]byte(c.ok("audit", "--sandbox", id, "-o", "json")), &recs); err != nil {
			t.Fatal(err)
		}
		if exitOf(recs, "process", "sh -c 'sleep 0.2; exit 5'") != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond) // polling the server's trail
	}
	if code := exitOf(recs, "exec", "sh -c 'exit 7'"); code == nil || *code != 7 {
		t.Errorf("the trail has exit code %v for sh -c 'exit 7': %+v", code, recs)
	}
	if code := exitOf(recs, "process", "sh -c 'sleep 0.2; exit 5'"); code == nil || *code != 5 {
		t.Errorf("the trail has exit code %v for the background process: %+v", code, recs)
	}

	// A sandbox's own policy may tighten the server's deny, never loosen it.
	if out, errs, code := c.run("create", "--security-policy", "audit", "--label", dockertest.Label+"="+env.RunID); code == 0 ||
		!strings.Contains(errs, `security_policy "audit"`) || !strings.Contains(errs, "(deny)") {
		c.run("--host", "", "rm", "-f", strings.TrimSpace(out))
		t.Errorf("create --security-policy audit under deny: exit %d, %q", code, errs)
	}
	if _, errs, code := c.run("create", "--security-policy", "lax"); code == 0 || !strings.Contains(errs, "--security-policy") {
		t.Errorf("create --security-policy lax: exit %d, %q", code, errs)
	}
	strict := strings.TrimSpace(c.ok("create", "--security-policy", "deny", "--label", dockertest.Label+"="+env.RunID))
	t.Cleanup(func() { c.run("--host", "", "rm", "-f", strict) })
	if out := c.ok("inspect", strict); !strings.Contains(out, "security_policy:") || !strings.Contains(out, "deny") {
		t.Errorf("inspect of a sandbox with its own policy:\n%s", out)
	}

	// SIGKILL the server, start another on the same trail: the records are there.
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.exited
	srv.exited <- nil
	srv2 := startServer(t, c, bin)
	t.Setenv("BERTH_HOST", "http://"+srv2.addr)
	out := c.ok("audit", "--sandbox", id, "-o", "json")
	for _, want := range []string{`"denied"`, "rm-root", "rm -rf ./build"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit trail after SIGKILL lacks %s:\n%s", want, out)
		}
	}
}

// A server SIGKILLed in the middle of creates leaves no half-made sandbox
// once a restarted server's reconciler has run: every berth container of
// this test is a working sandbox or gone, and a sandbox made before is
// untouched.
func TestServerKilledMidCreate(t *testing.T) {
	c := newCLI(t)
	c.addConfig("[server]\nreconcile_interval = \"1s\"\ncreate_grace = \"1s\"\n")
	label := dockertest.Label + "=" + env.RunID
	before := strings.TrimSpace(c.ok("create", "--label", label))
	t.Cleanup(func() { c.run("--host", "", "rm", "-f", before) })

	bin := buildBerth(t, t.TempDir())
	srv := startServer(t, c, bin)
	// Creates in flight: the server dies under them.
	for range 3 {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, "http://"+srv.addr+"/api/v1/sandboxes",
				strings.NewReader(`{"labels":{"`+dockertest.Label+`":"`+env.RunID+`"}}`))
			req.Header.Set("Content-Type", "application/json")
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	// Kill once a create has made its container (the engine says so).
	deadline := time.Now().Add(30 * time.Second)
	for len(env.Containers(t)) < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling the engine for the container to appear
	}
	t.Logf("containers of the run when the kill is sent: %d", len(env.Containers(t)))
	srv.cmd.Process.Signal(syscall.SIGKILL)
	<-srv.exited
	srv.exited <- nil
	for _, cid := range env.Containers(t) {
		if res, err := env.Client.ContainerInspect(context.Background(), cid, client.ContainerInspectOptions{}); err == nil && res.Container.State != nil {
			t.Logf("after the kill: %s %s", cid[:12], res.Container.State.Status)
		}
	}

	startServer(t, c, bin)
	// After the grace and a reconciler pass: nothing is left half-made.
	deadline = time.Now().Add(60 * time.Second)
	for {
		var bad []string
		for _, cid := range env.Containers(t) {
			res, err := env.Client.ContainerInspect(context.Background(), cid, client.ContainerInspectOptions{})
			if err == nil && res.Container.State != nil && res.Container.State.Status != "running" {
				bad = append(bad, cid[:12]+" "+string(res.Container.State.Status))
			}
		}
		if len(bad) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("half-made containers left after the reconciler: %v", bad)
		}
		time.Sleep(200 * time.Millisecond) // the reconciler runs every second
	}
	// Every sandbox left answers its agent, and the one made before is intact.
	for _, cid := range env.Containers(t) {
		res, _ := env.Client.ContainerInspect(context.Background(), cid, client.ContainerInspectOptions{})
		id := res.Container.Config.Labels[sandbox.LabelID]
		t.Cleanup(func() { c.run("--host", "", "rm", "-f", id) })
		if out, _, code := c.run("--host", "", "exec", id, "--", "echo", "ok"); code != 0 || out != "ok\n" {
			t.Errorf("sandbox %s after the kill: exit %d %q", id, code, out)
		}
	}
	if out := c.ok("--host", "", "inspect", before); !strings.Contains(out, "RUNNING") {
		t.Errorf("the sandbox made before the kill: %q", out)
	}
}

// confirm holds a HIGH command until someone answers: approved, it runs;
// unanswered, it is refused when the approval times out and never runs.
func TestSecurityConfirmEndToEnd(t *testing.T) {
	c := newCLI(t)
	c.addConfig("[security]\npolicy = \"confirm\"\napproval_timeout = \"3s\"\n")
	srv := startServer(t, c, buildBerth(t, t.TempDir()))
	t.Setenv("BERTH_HOST", "http://"+srv.addr)
	id := strings.TrimSpace(c.ok("create", "--label", dockertest.Label+"="+env.RunID))
	t.Cleanup(func() { c.run("--host", "", "rm", "-f", id) })

	// A HIGH command (it names chmod -R 777 /) that leaves a mark if it runs.
	high := func(mark string) func() (string, int) {
		return func() (string, int) {
			_, errs, code := c.run("exec", id, "--", "sh", "-c", "touch /tmp/"+mark+"; chmod -R 777 / 2>/dev/null; true")
			return errs, code
		}
	}
	type result struct {
		errs string
		code int
	}
	done := make(chan result, 1)
	// waitPending waits for the command to be pending and returns its id.
	waitPending := func() string {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, _, _ := c.run("approvals", "-o", "json")
			var list []struct {
				ID string `json:"id"`
			}
			if json.Unmarshal([]byte(out), &list) == nil && len(list) > 0 {
				return list[0].ID
			}
			if time.Now().After(deadline) {
				t.Fatalf("no pending approval appeared: %q", out)
			}
			time.Sleep(50 * time.Millisecond) // polling the server's approvals
		}
	}
	// Refused by a person, naming the sandbox: after a try that names
	// another sandbox and answers nothing.
	go func() { errs, code := high("refused")(); done <- result{errs, code} }()
	pending := waitPending()
	if _, errs, code := c.run("approve", "not-"+id, pending); code == 0 || !strings.Contains(errs, "nothing was answered") {
		t.Errorf("approve naming another sandbox: exit %d, %q", code, errs)
	}
	c.ok("deny", id[:6], pending)
	if r := <-done; r.code == 0 || !strings.Contains(r.errs, "denied by a person") {
		t.Errorf("refused command: exit %d, %q", r.code, r.errs)
	}
	// Approved: it runs.
	go func() { errs, code := high("approved")(); done <- result{errs, code} }()
	pending = waitPending()
	c.ok("approve", pending)
	if r := <-done; r.code != 0 {
		t.Errorf("approved command: exit %d, %q", r.code, r.errs)
	}
	// Unanswered: refused at the timeout, and nothing of it ran.
	if errs, code := high("unanswered")(); code == 0 {
		t.Errorf("unanswered HIGH command ran (exit 0, %q)", errs)
	}
	out := c.ok("exec", id, "--", "ls", "/tmp")
	if !strings.Contains(out, "approved") || strings.Contains(out, "unanswered") || strings.Contains(out, "refused") {
		t.Errorf("/tmp after approve and timeout: %q", out)
	}
}
