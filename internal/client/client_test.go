package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/sandbox"
)

func TestSizeAndDuration(t *testing.T) {
	var req client.CreateRequest
	if err := json.Unmarshal([]byte(`{"memory":"512m","timeout":90}`), &req); err != nil {
		t.Fatal(err)
	}
	if req.Memory != 512<<20 || time.Duration(req.Timeout) != 90*time.Second {
		t.Errorf("%+v", req)
	}
	if err := json.Unmarshal([]byte(`{"memory":1048576,"timeout":"2m"}`), &req); err != nil {
		t.Fatal(err)
	}
	if req.Memory != 1<<20 || time.Duration(req.Timeout) != 2*time.Minute {
		t.Errorf("%+v", req)
	}
	if err := json.Unmarshal([]byte(`{"timeout":"1.5"}`), &req); err != nil || time.Duration(req.Timeout) != 1500*time.Millisecond {
		t.Errorf("timeout \"1.5\": %v %v", time.Duration(req.Timeout), err)
	}
	for _, bad := range []string{`{"memory":"lots"}`, `{"memory":true}`, `{"timeout":"soon"}`, `{"timeout":1e300}`, `{"timeout":[]}`} {
		if err := json.Unmarshal([]byte(bad), &req); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
	b, _ := json.Marshal(client.CreateRequest{Memory: 1 << 20, Timeout: client.Duration(time.Minute)})
	if string(b) != `{"memory":1048576,"timeout":"1m0s"}` {
		t.Errorf("marshal: %s", b)
	}
	if b, _ := json.Marshal(client.CreateRequest{}); string(b) != `{}` {
		t.Errorf("empty request: %s", b)
	}
}

func TestRequestFromSpec(t *testing.T) {
	spec := sandbox.Spec{
		Name: "x", Image: sandbox.ImageSpec{Base: "busybox"}, Env: map[string]string{"A": "1"},
		UseHostNetwork: true, UserID: 0, ReadOnlyRootfs: true, Timeout: time.Minute,
		Limits: sandbox.Limits{Memory: 1 << 30, NanoCPUs: 15e8, PidsLimit: 10},
		GPUs:   sandbox.GPUs{Enabled: true, DeviceIDs: []string{"0", "2"}}, Debug: true, Owner: "ignored",
		SecurityPolicy: sandbox.PolicyDeny,
	}
	req, err := client.RequestFromSpec(spec)
	if err != nil {
		t.Fatal(err)
	}
	if req.Image != "busybox" || req.Network != "host" || req.Memory != 1<<30 || req.CPUs != 1.5 || req.PidsLimit != 10 ||
		req.UserID != nil || req.ReadOnly == nil || !*req.ReadOnly || req.GPUs != "0,2" || time.Duration(req.Timeout) != time.Minute ||
		req.SecurityPolicy != "deny" {
		t.Errorf("%+v", req)
	}
	for _, bad := range []sandbox.Spec{
		{Image: sandbox.ImageSpec{ExtraDeps: "apt-get install x"}},
		{BindAddress: "0.0.0.0"},
		{Limits: sandbox.Limits{Ulimits: []sandbox.Ulimit{{Name: "nofile"}}}},
	} {
		if _, err := client.RequestFromSpec(bad); !errors.Is(err, sandbox.ErrInvalidSpec) {
			t.Errorf("RequestFromSpec(%+v) = %v, want ErrInvalidSpec", bad, err)
		}
	}
}

func TestNewAndErrors(t *testing.T) {
	for _, bad := range []string{"ftp://x", "http://", "http://a b"} {
		if _, err := client.New(bad, "", nil); err == nil {
			t.Errorf("New(%q): no error", bad)
		}
	}
	var got []http.Header
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.Header.Clone())
		switch r.URL.Path {
		case "/api/v1/sandboxes/gone":
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			_, _ = io.WriteString(w, `{"code":"not_found","message":"no such sandbox: \"gone\""}`)
		case "/api/v1/sandboxes/paused/exec":
			w.WriteHeader(409)
			_, _ = io.WriteString(w, `{"code":"not_running","message":"sandbox is PAUSED"}`)
		default:
			w.WriteHeader(502)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}
	}))
	defer ts.Close()
	c, err := client.New(strings.TrimPrefix(ts.URL, "http://"), "tok", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	_, err = c.Get(ctx, "gone")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Status != 404 || !errors.Is(err, sandbox.ErrNotFound) || errors.Is(err, sandbox.ErrConflict) {
		t.Errorf("404: %v", err)
	}
	if _, err := c.Exec(ctx, "paused", client.ExecRequest{Command: "x"}, nil); !errors.Is(err, sandbox.ErrNotRunning) {
		t.Errorf("409 not_running: %v", err)
	}
	_, err = c.Get(ctx, "other")
	if !errors.As(err, &ae) || ae.Err.Code != client.CodeAgent || !strings.Contains(ae.Err.Message, "bad gateway") {
		t.Errorf("non-JSON 502: %v", err)
	}
	if err := (client.Remote{C: c}).Remove(ctx, "gone"); err != nil {
		t.Errorf("Remote.Remove of a gone sandbox: %v", err)
	}
	if got[0].Get("Authorization") != "Bearer tok" {
		t.Errorf("headers %v", got[0])
	}
	// The token goes to the server only, never to another host.
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Error("the token went to another host")
		}
	}))
	defer other.Close()
	resp, err := c.HTTPClient().Get(other.URL)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// A reference with ':' or '/' stays one path segment.
	if p := client.SandboxPath("a/b:batchGet", "/exec"); p != "/api/v1/sandboxes/a%2Fb%3AbatchGet/exec" {
		t.Errorf("SandboxPath = %s", p)
	}
	if u := c.AgentURL("abc"); u != ts.URL+"/api/v1/sandboxes/abc/agent" {
		t.Errorf("AgentURL = %s", u)
	}
	// Unreachable: ErrUnavailable.
	dead, _ := client.New("127.0.0.1:1", "", nil)
	if _, err := dead.Get(ctx, "x"); !errors.Is(err, sandbox.ErrUnavailable) {
		t.Errorf("unreachable server: %v", err)
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if c, ok, err := client.FromEnv(lookup); c != nil || ok || err != nil {
		t.Errorf("no BERTH_HOST: %v %v %v", c, ok, err)
	}
	env[client.EnvHost], env[client.EnvToken] = "127.0.0.1:7474", "t"
	c, ok, err := client.FromEnv(lookup)
	if err != nil || !ok || c.BaseURL() != "http://127.0.0.1:7474" || c.Header().Get("Authorization") != "Bearer t" {
		t.Errorf("FromEnv: %v %v %v", c, ok, err)
	}
}

func TestEventStreamParsing(t *testing.T) {
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, ": subscribed\n\n: ping\n\nevent: ready\ndata: {\"type\":\"ready\",\"id\":\"a\"}\n\n"+
			"event: oom\r\ndata: {\"type\":\"oom\",\r\ndata: \"id\":\"b\"}\r\n\r\n")
	}))
	defer ts.Close()
	c, _ := client.New(ts.URL, "", nil)
	es, err := c.Events(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer es.Close()
	for _, want := range []string{"ready a", "oom b"} {
		e, err := es.Next()
		if err != nil || e.Type+" "+e.ID != want {
			t.Fatalf("event %+v %v, want %s", e, err, want)
		}
	}
	if _, err := es.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("end: %v", err)
	}
}
