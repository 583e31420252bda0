package agent

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/agentapi"
)

func TestMetaSetsEnvOfLaterProcesses(t *testing.T) {
	a := newTestAgent(t, nil)
	res, err := a.client.SetMeta(t.Context(), agentapi.MetaRequest{Env: map[string]string{
		"TENANT": "alice", "KEEP_ME": "overridden", "HOME": "/not/the/home",
	}})
	if err != nil {
		t.Fatalf("SetMeta: %v", err)
	}
	if strings.Join(res.Env, ",") != "HOME,KEEP_ME,TENANT" {
		t.Errorf("answer names %v", res.Env)
	}
	out := string(a.exec(t, agentapi.ExecRequest{Command: "echo $TENANT $KEEP_ME $HOME; env | grep -c ^BERTH_ || true"}).stdout)
	want := "alice overridden " + a.user.Home + "\n0\n"
	if out != want {
		t.Errorf("exec sees %q, want %q (caller's env over the agent's, the user's HOME, no BERTH_*)", out, want)
	}
	// A request's own env still wins.
	out = string(a.exec(t, agentapi.ExecRequest{Command: "echo $TENANT", Env: map[string]string{"TENANT": "bob"}}).stdout)
	if out != "bob\n" {
		t.Errorf("request env: %q", out)
	}
	// Once only: after any other keyed request, it is refused.
	_, err = a.client.SetMeta(t.Context(), agentapi.MetaRequest{Env: map[string]string{"TENANT": "mallory"}})
	var ae *agentapi.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Fatalf("second SetMeta = %v, want 409", err)
	}
	if out := string(a.exec(t, agentapi.ExecRequest{Command: "echo $TENANT"}).stdout); out != "alice\n" {
		t.Errorf("after a refused SetMeta: %q", out)
	}
}

func TestMetaRefusesAfterExecAndBadEnv(t *testing.T) {
	a := newTestAgent(t, nil)
	for _, env := range []map[string]string{
		{agentapi.EnvKey: "x"}, {"BERTH_ANYTHING": "x"}, {"A=B": "x"}, {"": "x"}, {"A": "nul\x00"},
	} {
		_, err := a.client.SetMeta(t.Context(), agentapi.MetaRequest{Env: env})
		var ae *agentapi.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusBadRequest {
			t.Errorf("SetMeta(%q) = %v, want 400", env, err)
		}
	}
	// Bad requests were keyed requests too: the agent has served one.
	if _, err := a.client.SetMeta(t.Context(), agentapi.MetaRequest{}); err == nil {
		t.Error("SetMeta after other keyed requests succeeded")
	}

	b := newTestAgent(t, nil)
	b.exec(t, agentapi.ExecRequest{Argv: []string{"true"}})
	_, err := b.client.SetMeta(t.Context(), agentapi.MetaRequest{Env: map[string]string{"X": "1"}})
	var ae *agentapi.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusConflict {
		t.Fatalf("SetMeta after an exec = %v, want 409", err)
	}
	// Without the key: 401, as every keyed path.
	c := agentapi.New(b.url, "wrong", b.hc)
	if _, err := c.SetMeta(t.Context(), agentapi.MetaRequest{}); !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Errorf("SetMeta with a wrong key = %v, want 401", err)
	}
}
