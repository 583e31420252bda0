package client_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/pool"
	"github.com/berth-dev/berth/internal/server"
)

// On the real engine, through the server: a sandbox claimed warm from a
// pool with a policy of its own is judged by that policy at once; the
// audit trail of a cold one holds the exit codes of proxied execs,
// session commands and a background process, and the end of file calls.
func TestEngineSandboxPolicyAndExits(t *testing.T) {
	var m *pool.Manager
	es := newEngineServer(t, func(es *engineServer, o *server.Options) {
		trail, err := audit.Open(filepath.Join(t.TempDir(), "audit.jsonl"), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = trail.Close() })
		spec, err := es.sandboxSpecs()
		if err != nil {
			t.Fatal(err)
		}
		if m, err = pool.New(es.rt, pool.Options{Shapes: []pool.Shape{{Spec: spec, Size: 1}}, Labels: env.Labels()}); err != nil {
			t.Fatal(err)
		}
		o.Runtime, o.Audit = m.Runtime(), trail
		o.Config.Security.Policy = server.PolicyAudit
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	t.Cleanup(func() {
		if _, err := m.Drain(context.Background(), ""); err != nil {
			t.Errorf("drain: %v", err)
		}
	})
	if err := m.Fill(ctx); err != nil {
		t.Fatal(err)
	}

	// Claimed warm, with its own deny: refused at once, through the proxy
	// and the REST exec alike.
	warm := es.create(t, es.alice, client.CreateRequest{SecurityPolicy: server.PolicyDeny})
	if st := m.Stats()[0]; st.Claims != 1 || warm.SecurityPolicy != server.PolicyDeny {
		t.Fatalf("create: %+v (pool %+v); want the pooled sandbox with policy deny", warm, st)
	}
	_, err := es.alice.Agent(warm.ID).Exec(ctx, agentapi.ExecRequest{Command: "rm -rf /"}, nil)
	if !agentStatus(err, 403) {
		t.Errorf("rm -rf / through the proxy in the claimed deny sandbox: %v, want 403", err)
	}
	if _, err := es.alice.Exec(ctx, warm.ID, client.ExecRequest{Command: "rm -rf /"}, nil); !client.IsStatus(err, 403) {
		t.Errorf("rm -rf / by the REST exec in the claimed deny sandbox: %v, want 403", err)
	}
	if got, err := es.alice.Get(ctx, warm.ID); err != nil || got.SecurityPolicy != server.PolicyDeny {
		t.Errorf("get the claimed sandbox: %+v %v", got, err)
	}
	// A looser policy than the tenant's is refused.
	if _, err := es.alice.Create(ctx, client.CreateRequest{SecurityPolicy: server.PolicyOff}); !client.IsStatus(err, 400) {
		t.Errorf("create with policy off under audit: %v, want 400", err)
	}

	// Cold (the pool is empty now): exit codes reach the trail.
	cold := es.create(t, es.alice, client.CreateRequest{})
	ag := es.alice.Agent(cold.ID)
	if exit, err := ag.Exec(ctx, agentapi.ExecRequest{Argv: []string{"sh", "-c", "exit 7"}}, nil); err != nil || exit.ExitCode != 7 {
		t.Fatalf("proxied exec: %+v %v", exit, err)
	}
	if exit, err := ag.SessionExec(ctx, "s", agentapi.SessionExecRequest{Command: "(exit 4)"}, nil); err != nil || exit.ExitCode != 4 {
		t.Fatalf("proxied session exec: %+v %v", exit, err)
	}
	if _, err := ag.WriteFile(ctx, "notes.txt", strings.NewReader("x"), agentapi.WriteOptions{}); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := ag.Remove(ctx, "/workspace/no-such-file", false); !agentStatus(err, 404) {
		t.Fatalf("remove a missing file: %v", err)
	}
	p, err := ag.StartProcess(ctx, agentapi.ProcessRequest{Command: "sleep 0.3; exit 5"})
	if err != nil {
		t.Fatalf("start process: %v", err)
	}
	want := []struct {
		action audit.Action
		exit   int // -1: none
		status int
	}{
		{audit.ActionExec, 7, 0}, {audit.ActionSession, 4, 0}, {audit.ActionFileWrite, 0, 0},
		{audit.ActionFileRemove, -1, 404}, {audit.ActionProcess, 5, 0},
	}
	// The process's exit is recorded when the server sees it, after this
	// call returns: poll the trail for it.
	var recs []client.AuditRecord
	deadline := time.Now().Add(30 * time.Second)
	for {
		if recs, err = es.alice.Audit(ctx, client.AuditOptions{Sandbox: cold.ID}); err != nil {
			t.Fatal(err)
		}
		if len(recs) == len(want) && recs[len(recs)-1].ExitCode != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond) // polling the trail
	}
	if len(recs) != len(want) {
		t.Fatalf("records %+v", recs)
	}
	for i, w := range want {
		r := recs[i]
		ok := r.Action == w.action && r.Status == w.status && r.DurationMS > 0
		if w.exit < 0 {
			ok = ok && r.ExitCode == nil
		} else {
			ok = ok && r.ExitCode != nil && *r.ExitCode == w.exit
		}
		if !ok {
			t.Errorf("record %d: %+v, want %s exit %d status %d", i, r, w.action, w.exit, w.status)
		}
	}
	if r := recs[len(recs)-1]; r.DurationMS < 300 {
		t.Errorf("process %s ran %d ms by its record, want at least 300", p.ID, r.DurationMS)
	}
	warmRecs, err := es.alice.Audit(ctx, client.AuditOptions{Sandbox: warm.ID})
	if err != nil || len(warmRecs) != 2 || warmRecs[0].Decision != audit.Denied || warmRecs[1].Decision != audit.Denied {
		t.Errorf("claimed sandbox's records: %+v %v", warmRecs, err)
	}
}

// agentStatus reports whether err is the agent's (or the proxy's) answer
// with status.
func agentStatus(err error, status int) bool {
	var e *agentapi.APIError
	return errors.As(err, &e) && e.Status == status
}
