package server

import (
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
)

// Under deny, an environment that runs code or loads code berth cannot see
// is refused with the command it comes with, wherever it is given: the
// REST exec, the agent's exec, processes, sessions, and meta (the
// environment of every later command). Nothing reaches the agent.
func TestDenyEnv(t *testing.T) {
	h, trail := newSecHarness(t, denyCfg())
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	agentPath := func(p string) string { return client.SandboxPath(sb.ID, client.AgentSuffix+p) }
	before := len(h.agent.seen())
	cases := []struct {
		path, body, rule string
		action           audit.Action
		what             string
	}{
		{client.SandboxPath(sb.ID, "/exec"), `{"command":"ls","env":{"LD_PRELOAD":"/tmp/evil.so","PATH":"/bin"}}`,
			"env-preload", audit.ActionExec, "LD_PRELOAD=/tmp/evil.so ls"},
		{client.SandboxPath(sb.ID, "/exec"), `{"cmd":["bash","-i"],"env":{"PROMPT_COMMAND":"rm -rf /"}}`,
			"rm-root", audit.ActionExec, "PROMPT_COMMAND='rm -rf /' bash -i"},
		{agentPath("/api/v1/exec"), `{"argv":["bash","-c","ls"],"env":{"BASH_FUNC_ls%%":"() { rm -rf /*; }"}}`,
			"rm-root", audit.ActionExec, "BASH_FUNC_ls%%='() { rm -rf /*; }' bash -c ls"},
		{agentPath("/api/v1/processes"), `{"command":"make","env":{"BASH_ENV":"/tmp/x.sh"}}`,
			"env-shell-startup", audit.ActionProcess, "BASH_ENV=/tmp/x.sh make"},
		{agentPath("/api/v1/sessions"), `{"name":"main","env":{"PS1":"$(rm -rf ~) $ "}}`,
			"rm-home", audit.ActionSession, "PS1='$(rm -rf ~) $ ' (new session main)"},
		{agentPath("/api/v1/sessions/main/exec"), `{"command":"ls","create":{"shell":"bash","env":{"LD_AUDIT":"/x.so"}}}`,
			"env-preload", audit.ActionSession, "LD_AUDIT=/x.so ls"},
		{agentPath("/api/v1/meta"), `{"env":{"API_TOKEN":"s3cr3t","LD_PRELOAD":"/tmp/evil.so"}}`,
			"env-preload", audit.ActionEnv, "API_TOKEN=… LD_PRELOAD=/tmp/evil.so"},
		{agentPath("/api/v1//meta/"), `{"env":{"BASH_ENV":"/tmp/x.sh"}}`,
			"env-shell-startup", audit.ActionEnv, "BASH_ENV=/tmp/x.sh"},
	}
	for _, c := range cases {
		resp, out := h.do("POST", c.path, aliceToken, c.body)
		t.Run(c.path+" "+c.rule, func(t *testing.T) { wantDenied(t, resp, out, c.rule) })
	}
	if got := h.agent.seen()[before:]; len(got) != 0 {
		t.Fatalf("the agent received refused calls: %v", got)
	}
	recs := records(t, trail, audit.Query{Sandbox: sb.ID})
	if len(recs) != len(cases) {
		t.Fatalf("%d records, want %d: %+v", len(recs), len(cases), recs)
	}
	for i, r := range recs {
		c := cases[i]
		if r.Action != c.action || r.Decision != audit.Denied || r.Level != "HIGH" || r.What != c.what || !slices.Contains(r.Rules, c.rule) {
			t.Errorf("record %d: %+v, want %s %q with %s", i, r, c.action, c.what, c.rule)
		}
	}
	// The value of a variable no rule is about (a token) is not recorded.
	b, err := os.ReadFile(trail.Path())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "s3cr3t") {
		t.Errorf("the trail holds an environment value no rule is about:\n%s", b)
	}
}

// A harmless environment runs under deny; a MEDIUM one runs, audited, with
// its variable in the record.
func TestDenyEnvHarmless(t *testing.T) {
	h, trail := newSecHarness(t, denyCfg())
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	for _, c := range []struct {
		path, body string
	}{
		{client.SandboxPath(sb.ID, "/exec"), `{"command":"ls","env":{"PATH":"/usr/bin:/bin","HOME":"/home/u","LANG":"C.UTF-8","FOO":"rm -rf /"}}`},
		{client.SandboxPath(sb.ID, "/exec"), `{"command":"ls","env":{"LD_LIBRARY_PATH":"/opt/lib"}}`},
		{client.SandboxPath(sb.ID, client.AgentSuffix+"/api/v1/exec"), `{"command":"ls","env":{"EDITOR":"vim","PS1":"\\w $ "}}`},
	} {
		resp, out := h.do("POST", c.path, aliceToken, c.body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(out, `"exit"`) {
			t.Fatalf("%s: %d %s", c.body, resp.StatusCode, out)
		}
	}
	recs := records(t, trail, audit.Query{Sandbox: sb.ID})
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3: %+v", len(recs), recs)
	}
	for i, want := range []struct {
		decision    audit.Decision
		level, what string
		rules       int
	}{
		{audit.Allowed, "LOW", "ls", 0},
		{audit.Audited, "MEDIUM", "LD_LIBRARY_PATH=/opt/lib ls", 1},
		{audit.Allowed, "LOW", "ls", 0},
	} {
		r := recs[i]
		if r.Decision != want.decision || r.Level != want.level || r.What != want.what || len(r.Rules) != want.rules ||
			r.ExitCode == nil || *r.ExitCode != 0 {
			t.Errorf("record %d: %+v, want %s %s %q", i, r, want.decision, want.level, want.what)
		}
	}
}

// Under audit the environment is judged and recorded, and the call goes
// through: a session started with an environment and meta are actions of
// their own, which the agent's answer ends.
func TestAuditEnv(t *testing.T) {
	cfg := twoTenants()
	cfg.Security.Policy = PolicyAudit
	h, trail := newSecHarness(t, cfg)
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	resp, out := h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"ls","env":{"PROMPT_COMMAND":"rm -rf /"}}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(out, `"exit"`) {
		t.Fatalf("exec: %d %s", resp.StatusCode, out)
	}
	// The fake agent has neither route: its 404 ends the record.
	for _, c := range []struct{ path, body string }{
		{"/api/v1/meta", `{"env":{"LD_PRELOAD":"/tmp/evil.so"}}`},
		{"/api/v1/sessions", `{"name":"dev","shell":"zsh","env":{"TERM":"dumb"}}`},
		{"/api/v1/sessions", `{"name":"plain"}`}, // no environment: not an action
	} {
		n := len(h.agent.seen())
		resp, out := h.do("POST", client.SandboxPath(sb.ID, client.AgentSuffix+c.path), aliceToken, c.body)
		if resp.StatusCode != http.StatusNotFound || len(h.agent.seen()) != n+1 || !strings.HasPrefix(h.agent.lastPath(), c.path+"?") {
			t.Fatalf("%s was not forwarded: %d %s", c.path, resp.StatusCode, out)
		}
	}
	recs := records(t, trail, audit.Query{Sandbox: sb.ID})
	if len(recs) != 3 {
		t.Fatalf("%d records, want 3: %+v", len(recs), recs)
	}
	if r := recs[0]; r.Action != audit.ActionExec || r.Decision != audit.Audited || r.Level != "HIGH" ||
		r.What != "PROMPT_COMMAND='rm -rf /' ls" || strings.Join(r.Rules, ",") != "env-prompt-command,rm-root" || r.ExitCode == nil {
		t.Errorf("exec record %+v", r)
	}
	if r := recs[1]; r.Action != audit.ActionEnv || r.Decision != audit.Audited || r.Level != "HIGH" ||
		r.What != "LD_PRELOAD=/tmp/evil.so" || r.Status != http.StatusNotFound {
		t.Errorf("meta record %+v", r)
	}
	if r := recs[2]; r.Action != audit.ActionSession || r.Decision != audit.Allowed || r.Level != "LOW" ||
		r.What != "(new session dev, shell zsh)" || r.Status != http.StatusNotFound {
		t.Errorf("session record %+v", r)
	}
}
