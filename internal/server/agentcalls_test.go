package server

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/sandbox"
)

func TestStricter(t *testing.T) {
	for _, c := range []struct{ a, b, want string }{
		{PolicyOff, PolicyAudit, PolicyAudit},
		{PolicyAudit, PolicyOff, PolicyAudit},
		{PolicyAudit, PolicyConfirm, PolicyConfirm},
		{PolicyDeny, PolicyConfirm, PolicyDeny},
		{PolicyConfirm, PolicyDeny, PolicyDeny},
		{PolicyAudit, "", PolicyAudit},
		{PolicyOff, PolicyOff, PolicyOff},
	} {
		if got := stricter(c.a, c.b); got != c.want {
			t.Errorf("stricter(%q, %q) = %q, want %q", c.a, c.b, got, c.want)
		}
	}
}

// A sandbox's own policy tightens its tenant's, never loosens it: a
// looser one is refused at create, and nothing is created.
func TestSandboxPolicy(t *testing.T) {
	cfg := twoTenants()
	cfg.Security.Policy = PolicyAudit
	cfg.Tenants[1].SecurityPolicy = PolicyDeny // bob
	h, trail := newSecHarness(t, cfg)
	alice, bob := h.client(aliceToken), h.client(bobToken)
	ctx := t.Context()

	strict := h.create(alice, client.CreateRequest{SecurityPolicy: PolicyDeny})
	plain := h.create(alice, client.CreateRequest{})
	if strict.SecurityPolicy != PolicyDeny || plain.SecurityPolicy != "" {
		t.Fatalf("created records: %q and %q", strict.SecurityPolicy, plain.SecurityPolicy)
	}
	if got, err := alice.Get(ctx, strict.ID); err != nil || got.SecurityPolicy != PolicyDeny {
		t.Fatalf("get: %+v %v", got, err)
	}
	if spec := h.rt.spec(strict.ID); spec.SecurityPolicy != PolicyDeny {
		t.Errorf("the runtime got security policy %q", spec.SecurityPolicy)
	}
	// Under the tenant's audit, the plain sandbox runs it; the strict one
	// refuses it, on the REST route and through the agent proxy.
	if resp, out := h.do("POST", client.SandboxPath(plain.ID, "/exec"), aliceToken, `{"command":"rm -rf /"}`); resp.StatusCode != 200 {
		t.Fatalf("plain sandbox: %d %s", resp.StatusCode, out)
	}
	resp, out := h.do("POST", client.SandboxPath(strict.ID, "/exec"), aliceToken, `{"command":"rm -rf /"}`)
	wantDenied(t, resp, out, "rm-root")
	if !strings.Contains(out, "(deny)") {
		t.Errorf("the refusal does not name the policy that applied: %s", out)
	}
	resp, out = h.do("POST", client.SandboxPath(strict.ID, client.AgentSuffix+"/api/v1/exec"), aliceToken, `{"command":"rm -rf /"}`)
	wantDenied(t, resp, out, "rm-root")
	if recs := records(t, trail, audit.Query{Sandbox: plain.ID}); len(recs) != 1 || recs[0].Decision != audit.Audited {
		t.Errorf("plain sandbox's records: %+v", recs)
	}
	if recs := records(t, trail, audit.Query{Sandbox: strict.ID}); len(recs) != 2 || recs[0].Decision != audit.Denied || recs[1].Decision != audit.Denied {
		t.Errorf("strict sandbox's records: %+v", recs)
	}

	// The tenant's own policy, or a stricter one, is fine; a looser one is
	// a 400 naming the field, the value and the tenant's policy.
	if sb := h.create(alice, client.CreateRequest{SecurityPolicy: PolicyAudit}); sb.SecurityPolicy != PolicyAudit {
		t.Errorf("same policy as the tenant's: %q", sb.SecurityPolicy)
	}
	if sb := h.create(bob, client.CreateRequest{SecurityPolicy: PolicyDeny}); sb.SecurityPolicy != PolicyDeny {
		t.Errorf("bob's deny: %q", sb.SecurityPolicy)
	}
	before := len(h.view.List(monitor.Filter{}))
	for _, c := range []struct {
		token, body string
		want        []string
	}{
		{aliceToken, `{"security_policy":"off"}`, []string{`security_policy "off"`, `"alice"`, "(audit)", "only tighten"}},
		{bobToken, `{"security_policy":"confirm"}`, []string{`security_policy "confirm"`, `"bob"`, "(deny)"}},
		{bobToken, `{"security_policy":"audit","name":"x"}`, []string{`security_policy "audit"`, "(deny)"}},
		{aliceToken, `{"security_policy":"strict"}`, []string{`security_policy "strict": use off, audit, confirm or deny`}},
	} {
		resp, out := h.do("POST", client.PathSandboxes, c.token, c.body)
		wantError(t, resp, out, 400, client.CodeBadRequest, "security_policy")
		var e client.Error
		if err := json.Unmarshal([]byte(out), &e); err != nil {
			t.Fatal(err)
		}
		for _, w := range c.want {
			if !strings.Contains(e.Message, w) {
				t.Errorf("%s: message %q lacks %q", c.body, e.Message, w)
			}
		}
	}
	if after := len(h.view.List(monitor.Filter{})); after != before {
		t.Errorf("refused creates made sandboxes: %d, then %d", before, after)
	}
}

// Under a server policy of off, a sandbox asking for a policy has its
// actions judged and recorded; the others are not.
func TestSandboxPolicyTightensOff(t *testing.T) {
	cfg := twoTenants()
	cfg.Security.Policy = PolicyOff
	h, trail := newSecHarness(t, cfg)
	alice := h.client(aliceToken)
	guarded := h.create(alice, client.CreateRequest{SecurityPolicy: PolicyDeny})
	open := h.create(alice, client.CreateRequest{})
	agentExec := func(id string) (*http.Response, string) {
		return h.do("POST", client.SandboxPath(id, client.AgentSuffix+"/api/v1/exec"), aliceToken, `{"command":"rm -rf /"}`)
	}
	resp, out := agentExec(guarded.ID)
	wantDenied(t, resp, out, "rm-root")
	if resp, out := agentExec(open.ID); resp.StatusCode != 200 {
		t.Fatalf("policy off: %d %s", resp.StatusCode, out)
	}
	if resp, out := h.do("POST", client.SandboxPath(guarded.ID, "/exec"), aliceToken, `{"command":"echo ok"}`); resp.StatusCode != 200 {
		t.Fatalf("LOW under the sandbox's deny: %d %s", resp.StatusCode, out)
	}
	recs := records(t, trail, audit.Query{})
	if len(recs) != 2 || recs[0].Sandbox != guarded.ID || recs[0].Decision != audit.Denied ||
		recs[1].Decision != audit.Allowed || recs[1].ExitCode == nil {
		t.Fatalf("records: %+v", recs)
	}
}

// Calls proxied to the agent complete their record: the exit code of an
// exec or session command, 0 for a file operation, the status of a
// refusal, and (later) the exit code of a background process.
func TestProxiedCallsRecordTheirEnd(t *testing.T) {
	cfg := twoTenants()
	cfg.Security.Policy = PolicyAudit
	h, trail := newSecHarness(t, cfg)
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	none := -1
	cases := []struct {
		method, path, body string
		action             audit.Action
		status             int // the answer's
		exit               int // the record's; none: no exit code
		recStatus          int // the record's status
	}{
		{"POST", "/api/v1/exec", `{"command":"exit 7"}`, audit.ActionExec, 200, 7, 0},
		{"POST", "/api/v1/exec", `{"argv":["sh","-c","exit 0"]}`, audit.ActionExec, 200, 0, 0},
		{"POST", "/api/v1/exec", `{"command":"big"}`, audit.ActionExec, 200, 0, 0},
		{"POST", "/api/v1/exec", `{"argv":["nope"]}`, audit.ActionExec, 400, none, 400},
		{"POST", "/api/v1/sessions/main/exec", `{"command":"exit 3"}`, audit.ActionSession, 200, 3, 0},
		{"POST", "/api/v1/sessions/main/exec", `{"command":"sleep 100","timeout_ms":10}`, audit.ActionSession, 200, none, 0},
		{"PUT", "/api/v1/files?path=/workspace/a.txt", "hello", audit.ActionFileWrite, 201, 0, 0},
		{"DELETE", "/api/v1/files?path=/workspace/nope", "", audit.ActionFileRemove, 404, none, 404},
	}
	for _, c := range cases {
		resp, out := h.do(c.method, client.SandboxPath(sb.ID, client.AgentSuffix+c.path), aliceToken, c.body)
		if resp.StatusCode != c.status {
			t.Fatalf("%s %s: %d %s", c.method, c.path, resp.StatusCode, out)
		}
		if c.body == `{"command":"big"}` && (len(out) < 200<<10 || !strings.HasSuffix(out, `"duration_ms":1}`+"\n")) {
			t.Errorf("the big exec's answer did not pass whole: %d bytes, ends %q", len(out), out[max(len(out)-80, 0):])
		}
	}
	recs := records(t, trail, audit.Query{Sandbox: sb.ID})
	if len(recs) != len(cases) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(cases), recs)
	}
	for i, c := range cases {
		r := recs[i]
		switch {
		case r.Action != c.action:
			t.Errorf("%s %s: action %s", c.method, c.path, r.Action)
		case c.exit == none && r.ExitCode != nil:
			t.Errorf("%s %s %s: exit code %d, want none", c.method, c.path, c.body, *r.ExitCode)
		case c.exit != none && (r.ExitCode == nil || *r.ExitCode != c.exit):
			t.Errorf("%s %s %s: record %+v, want exit code %d", c.method, c.path, c.body, r, c.exit)
		case r.Status != c.recStatus:
			t.Errorf("%s %s %s: status %d, want %d", c.method, c.path, c.body, r.Status, c.recStatus)
		case (r.ExitCode != nil || r.Status != 0) != (r.DurationMS > 0):
			t.Errorf("%s %s %s: duration %d with exit %v status %d", c.method, c.path, c.body, r.DurationMS, r.ExitCode, r.Status)
		}
	}

	// A background process: its record is completed when it exits, with
	// how long it ran by the agent's clock.
	resp, out := h.do("POST", client.SandboxPath(sb.ID, client.AgentSuffix+"/api/v1/processes"), aliceToken, `{"command":"exit 5"}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("start process: %d %s", resp.StatusCode, out)
	}
	h.srv.background.Wait()
	recs = records(t, trail, audit.Query{Sandbox: sb.ID})
	if r := recs[len(recs)-1]; r.Action != audit.ActionProcess || r.ExitCode == nil || *r.ExitCode != 5 || r.DurationMS != 1500 {
		t.Errorf("process record %+v", r)
	}
}

// startProcess starts a running process through the proxy and waits for
// the server's first wait call on it.
func startProcess(t *testing.T, h *harness, base, id string) {
	t.Helper()
	req, err := http.NewRequest("POST", base+client.SandboxPath(id, client.AgentSuffix+"/api/v1/processes"), strings.NewReader(`{"command":"sleep 1000"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("start process: %d", resp.StatusCode)
	}
	select {
	case <-h.agent.procs.waits:
	case <-time.After(10 * time.Second):
		t.Fatal("the server never waited for the process")
	}
}

// The server follows a process across wait calls, and stops without a
// record when the agent forgets it, the sandbox goes away or stops, or the
// server shuts down.
func TestFollowedProcessEnds(t *testing.T) {
	setup := func(t *testing.T) (*harness, *audit.Trail, sandbox.Sandbox) {
		cfg := twoTenants()
		cfg.Security.Policy = PolicyAudit
		h, trail := newSecHarness(t, cfg)
		return h, trail, h.create(h.client(aliceToken), client.CreateRequest{})
	}
	lastExit := func(t *testing.T, trail *audit.Trail, id string) *int {
		t.Helper()
		recs := records(t, trail, audit.Query{Sandbox: id})
		if len(recs) == 0 || recs[len(recs)-1].Action != audit.ActionProcess {
			t.Fatalf("records %+v", recs)
		}
		return recs[len(recs)-1].ExitCode
	}

	t.Run("exits after several waits", func(t *testing.T) {
		h, trail, sb := setup(t)
		h.srv.processWait = 5 * time.Millisecond
		startProcess(t, h, h.ts.URL, sb.ID)
		<-h.agent.procs.waits // a second call: the first came back with it running
		h.agent.procs.end("1", 9)
		h.srv.background.Wait()
		if code := lastExit(t, trail, sb.ID); code == nil || *code != 9 {
			t.Fatalf("exit code %v, want 9", code)
		}
	})
	t.Run("agent forgets it", func(t *testing.T) {
		h, trail, sb := setup(t)
		h.srv.processWait = 5 * time.Millisecond
		startProcess(t, h, h.ts.URL, sb.ID)
		h.agent.procs.forget("1")
		h.srv.background.Wait()
		if code := lastExit(t, trail, sb.ID); code != nil {
			t.Fatalf("exit code %d recorded for a forgotten process", *code)
		}
	})
	for _, c := range []struct{ name, method, path string }{
		{"sandbox removed", "DELETE", ""},
		{"sandbox stopped", "POST", "/stop"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h, trail, sb := setup(t)
			startProcess(t, h, h.ts.URL, sb.ID)
			if resp, out := h.do(c.method, client.SandboxPath(sb.ID, c.path), aliceToken, ""); resp.StatusCode >= 300 {
				t.Fatalf("%s: %d %s", c.name, resp.StatusCode, out)
			}
			h.agent.procs.drop() // the agent dies with its sandbox
			h.srv.background.Wait()
			if code := lastExit(t, trail, sb.ID); code != nil {
				t.Fatalf("exit code %d recorded", *code)
			}
		})
	}
	t.Run("shutdown", func(t *testing.T) {
		ignore := goleak.IgnoreCurrent()
		t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
		h, trail, sb := setup(t)
		base, stop, done, _ := serving(t, h)
		startProcess(t, h, base, sb.ID)
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Serve did not return: the process's follower holds it")
		}
		if code := lastExit(t, trail, sb.ID); code != nil {
			t.Fatalf("exit code %d recorded", *code)
		}
	})
}

// A judged exec's stream reaches the caller as the agent sends it: the
// watch keeps flushing.
func TestWatchedStreamIsFlushed(t *testing.T) {
	cfg := twoTenants()
	cfg.Security.Policy = PolicyAudit
	h, trail := newSecHarness(t, cfg)
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	req, err := http.NewRequest("POST", h.ts.URL+client.SandboxPath(sb.ID, client.AgentSuffix+"/api/v1/exec"), strings.NewReader(`{"command":"block"}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	rd := bufio.NewReader(resp.Body)
	// The start event arrives while the command still runs.
	line, err := rd.ReadString('\n')
	if err != nil || !strings.Contains(line, `"start"`) {
		t.Fatalf("first line %q %v", line, err)
	}
	if recs := records(t, trail, audit.Query{Sandbox: sb.ID}); len(recs) != 1 || recs[0].ExitCode != nil {
		t.Fatalf("records while it runs: %+v", recs)
	}
	close(h.agent.release)
	var last agentapi.ExecEvent
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			break
		}
		if err := json.Unmarshal([]byte(line), &last); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
	}
	if last.Type != agentapi.EventExit {
		t.Fatalf("last event %+v", last)
	}
}

// scan finds the exit event in a stream fed in pieces, after a line too
// long to look at.
func TestCallWatchScan(t *testing.T) {
	h, trail := newSecHarness(t, Config{Security: SecurityConfig{Policy: PolicyAudit}})
	g, refused := h.srv.judge(t.Context(), nil, sandbox.Sandbox{ID: "sb"}, h.srv.judgeCommand(audit.ActionExec, "ls", nil))
	if refused != nil || g == nil {
		t.Fatalf("judge: %+v %+v", g, refused)
	}
	cw := h.srv.watchCall(nil, sandbox.Sandbox{ID: "sb"}, nil, act{kind: audit.ActionExec}, g)
	var all []byte
	for _, ev := range []agentapi.ExecEvent{{Type: agentapi.EventStart, PID: 1},
		{Type: agentapi.EventStdout, Data: []byte(strings.Repeat("y", maxEventLine))}, {Type: agentapi.EventExit, ExitCode: 4}} {
		b, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		all = append(append(all, b...), '\n')
	}
	for i := 0; i < len(all); i += 1000 {
		cw.scan(all[i:min(i+1000, len(all))])
		if cw.done && i+1000 < len(all) {
			t.Fatalf("an exit found at byte %d of %d", i, len(all))
		}
	}
	if !cw.done || len(cw.line) != 0 || cw.skipping {
		t.Fatalf("done %v line %q skipping %v", cw.done, cw.line, cw.skipping)
	}
	recs := records(t, trail, audit.Query{})
	if len(recs) != 1 || recs[0].ExitCode == nil || *recs[0].ExitCode != 4 {
		t.Fatalf("records %+v", recs)
	}
	// A session command still running has no exit yet.
	cw = h.srv.watchCall(nil, sandbox.Sandbox{}, nil, act{kind: audit.ActionSession}, g)
	cw.scan([]byte(`{"type":"exit","running":true}` + "\n"))
	if cw.done {
		t.Fatal("a running session command counted as exited")
	}
}
