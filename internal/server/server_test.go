package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/sandbox"
)

const (
	aliceToken = "alice-token-0123456789"
	bobToken   = "bob-token-0123456789ab"
)

func sha(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// twoTenants: alice (clear token, may reach the host), bob (hashed token).
func twoTenants() Config {
	return Config{Tenants: []Tenant{
		{Name: "alice", Token: aliceToken, AllowHostAccess: true},
		{Name: "bob", TokenSHA256: sha(bobToken)},
	}}
}

type harness struct {
	t     testing.TB
	view  *fakeView
	rt    *fakeRuntime
	agent *fakeAgent
	srv   *Server
	ts    *httptest.Server
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	return newHarnessWith(t, Options{Config: cfg})
}

// newHarnessWith is newHarness with more options (Pools...); the harness
// sets Runtime, View and Logger.
func newHarnessWith(t testing.TB, opts Options) *harness {
	t.Helper()
	h := &harness{t: t, view: newFakeView(), agent: newFakeAgent(t)}
	h.rt = newFakeRuntime(h.view, h.agent.URL)
	opts.Runtime, opts.View, opts.Logger = h.rt, h.view, slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.srv = srv
	h.ts = httptest.NewServer(srv.Handler())
	t.Cleanup(h.ts.Close)
	return h
}

func (h *harness) client(token string) *client.Client {
	h.t.Helper()
	c, err := client.New(h.ts.URL, token, nil)
	if err != nil {
		h.t.Fatal(err)
	}
	return c
}

// do sends a raw request and returns the status and body.
func (h *harness) do(method, path, token, body string, hdr ...string) (*http.Response, string) {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.ts.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, string(b)
}

// wantError checks an error answer: status, JSON body, code, and a
// message containing msg.
func wantError(t *testing.T, resp *http.Response, body string, status int, code, msg string) {
	t.Helper()
	if resp.StatusCode != status {
		t.Fatalf("status %d, want %d (body %s)", resp.StatusCode, status, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("content type %q, want application/json", ct)
	}
	var e client.Error
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body %q: %v", body, err)
	}
	if e.Code != code || !strings.Contains(e.Message, msg) {
		t.Fatalf("error %+v, want code %s with message containing %q", e, code, msg)
	}
}

func (h *harness) create(c *client.Client, req client.CreateRequest) sandbox.Sandbox {
	h.t.Helper()
	sb, err := c.Create(context.Background(), req)
	if err != nil {
		h.t.Fatalf("create: %v", err)
	}
	return sb
}

func TestTenantConfig(t *testing.T) {
	cases := []struct {
		name    string
		tenants []Tenant
		want    string
	}{
		{"short token", []Tenant{{Name: "a", Token: "short"}}, "at least 16"},
		{"no token", []Tenant{{Name: "a"}}, "exactly one of token and token_sha256"},
		{"both", []Tenant{{Name: "a", Token: aliceToken, TokenSHA256: sha(aliceToken)}}, "exactly one"},
		{"bad hash", []Tenant{{Name: "a", TokenSHA256: "abc"}}, "64 hex digits"},
		{"bad name", []Tenant{{Name: "a b", Token: aliceToken}}, "name"},
		{"twice", []Tenant{{Name: "a", Token: aliceToken}, {Name: "a", Token: bobToken}}, "given twice"},
		{"same token", []Tenant{{Name: "a", Token: aliceToken}, {Name: "b", TokenSHA256: sha(aliceToken)}}, `same token as tenant "a"`},
		{"negative quota", []Tenant{{Name: "a", Token: aliceToken, MaxSandboxes: -1}}, "negative"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := New(Options{Config: Config{Tenants: c.tenants}, Runtime: newFakeRuntime(newFakeView(), ""), View: newFakeView()})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("New = %v, want an error containing %q", err, c.want)
			}
		})
	}
	// The clear token is not kept.
	ts, err := newTenants([]Tenant{{Name: "a", Token: aliceToken}})
	if err != nil || ts.list[0].Token != "" {
		t.Fatalf("tenants keep the clear token: %+v %v", ts.list, err)
	}
}

func TestCheckAddr(t *testing.T) {
	open := newHarness(t, Config{}).srv
	for _, addr := range []string{"127.0.0.1:7474", "[::1]:7474", "localhost:0", "127.0.0.2:80"} {
		if err := open.CheckAddr(addr); err != nil {
			t.Errorf("CheckAddr(%s) without tokens: %v", addr, err)
		}
	}
	for _, addr := range []string{"0.0.0.0:7474", ":7474", "10.0.0.1:7474", "[::]:7474", "example.com:80"} {
		if err := open.CheckAddr(addr); err == nil || !strings.Contains(err.Error(), "loopback") {
			t.Errorf("CheckAddr(%s) without tokens = %v, want a loopback refusal", addr, err)
		}
	}
	withTokens := newHarness(t, twoTenants()).srv
	if err := withTokens.CheckAddr("0.0.0.0:7474"); err != nil {
		t.Errorf("CheckAddr with tokens: %v", err)
	}
}

func TestAuth(t *testing.T) {
	h := newHarness(t, twoTenants())
	// Public routes answer without a token.
	for _, p := range []string{client.PathHealth, client.PathOpenAPI, client.PathMetrics} {
		if resp, body := h.do("GET", p, "", ""); resp.StatusCode != 200 {
			t.Errorf("GET %s without token: %d %s", p, resp.StatusCode, body)
		}
	}
	// Everything else needs a known token, before routing.
	for _, tc := range []struct{ method, path, token string }{
		{"GET", client.PathSandboxes, ""},
		{"GET", client.PathSandboxes, "wrong-token-0123456789"},
		{"GET", client.PathSandboxes, strings.ToUpper(aliceToken)},
		{"POST", client.PathSandboxes + "/x/exec", ""},
		{"GET", "/no/such/path", ""},
		{"GET", client.PathEvents, "x"},
	} {
		resp, body := h.do(tc.method, tc.path, tc.token, "")
		wantError(t, resp, body, 401, client.CodeUnauthorized, "bearer token")
		if resp.Header.Get("WWW-Authenticate") == "" {
			t.Errorf("%s %s: no WWW-Authenticate", tc.method, tc.path)
		}
	}
	// "Basic" is not a bearer token.
	resp, body := h.do("GET", client.PathSandboxes, "", "", "Authorization", "Basic "+aliceToken)
	wantError(t, resp, body, 401, client.CodeUnauthorized, "")
	// Both tokens work, the hashed one included.
	for _, tok := range []string{aliceToken, bobToken} {
		if resp, body := h.do("GET", client.PathSandboxes, tok, ""); resp.StatusCode != 200 {
			t.Errorf("list with a good token: %d %s", resp.StatusCode, body)
		}
	}
	// With a token: 404 and 405 in JSON.
	resp, body = h.do("GET", "/no/such/path", aliceToken, "")
	wantError(t, resp, body, 404, client.CodeNotFound, "/no/such/path")
	resp, body = h.do("PUT", client.PathSandboxes, aliceToken, "")
	wantError(t, resp, body, 405, client.CodeMethodNotAllowed, "method not allowed")
	if allow := resp.Header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
		t.Errorf("Allow = %q", allow)
	}
}

func TestLocalMode(t *testing.T) {
	h := newHarness(t, Config{})
	c := h.client("")
	sb := h.create(c, client.CreateRequest{Image: "busybox", Volumes: []string{"/tmp:/data"}})
	if sb.Owner != LocalTenant {
		t.Errorf("owner %q, want local", sb.Owner)
	}
	if got := h.rt.spec(sb.ID).Volumes; len(got) != 1 {
		t.Errorf("the local tenant may mount host paths: volumes %v", got)
	}
	// A sandbox the CLI made (owner "local") is visible; another owner's is not.
	h.rt.mu.Lock()
	h.rt.sandboxes["ffother"] = sandbox.Sandbox{ID: "ffother", Owner: "alice", Status: sandbox.StatusRunning}
	h.rt.mu.Unlock()
	h.view.put(sandbox.Sandbox{ID: "ffother", Owner: "alice", Status: sandbox.StatusRunning})
	page, err := c.List(context.Background(), client.ListOptions{})
	if err != nil || len(page.Items) != 1 || page.Items[0].ID != sb.ID {
		t.Fatalf("local list = %+v, %v", page, err)
	}
	if _, err := c.Get(context.Background(), "ffother"); !errors.Is(err, sandbox.ErrNotFound) {
		t.Errorf("local sees alice's sandbox: %v", err)
	}
}

func TestCRUD(t *testing.T) {
	h := newHarness(t, twoTenants())
	c := h.client(aliceToken)
	ctx := context.Background()
	uid := 0
	sb := h.create(c, client.CreateRequest{
		Image: "busybox", Name: "web", Env: map[string]string{"A": "1"}, Labels: map[string]string{"team": "x"},
		Memory: 256 << 20, CPUs: 1.5, PidsLimit: 100, UserID: &uid, Timeout: client.Duration(90e9),
	})
	if sb.Owner != "alice" || sb.Name != "web" || sb.Labels["team"] != "x" || sb.Labels[MemoryLabel] != "268435456" {
		t.Fatalf("created %+v", sb)
	}
	spec := h.rt.spec(sb.ID)
	if spec.Owner != "alice" || spec.Env["A"] != "1" || spec.Limits.Memory != 256<<20 || spec.Limits.NanoCPUs != 15e8 ||
		spec.Limits.PidsLimit != 100 || spec.UserID != 0 || spec.Timeout.Seconds() != 90 || spec.Debug {
		t.Errorf("spec %+v", spec)
	}
	// Created: Location, ready event with the record, touched.
	resp, body := h.do("POST", client.PathSandboxes, aliceToken, `{"image":"busybox","memory":"64m","timeout":"1m"}`)
	if resp.StatusCode != 201 || !strings.HasPrefix(resp.Header.Get("Location"), client.PathSandboxes+"/") {
		t.Fatalf("create: %d %s %v", resp.StatusCode, body, resp.Header)
	}
	evs := h.view.events()
	if len(evs) != 2 || evs[0].Type != monitor.EventReady || evs[0].ID != sb.ID || evs[0].Owner != "alice" || evs[0].Sandbox == nil {
		t.Errorf("published %+v", evs)
	}
	if h.view.touches(sb.ID) == 0 {
		t.Error("create did not touch the sandbox")
	}
	// Get by id, prefix and name; the key never shows.
	for _, ref := range []string{sb.ID, sb.ID[:4], "web"} {
		got, err := c.Get(ctx, ref)
		if err != nil || got.ID != sb.ID {
			t.Errorf("get %q = %+v, %v", ref, got, err)
		}
	}
	if strings.Contains(body, fakeKey) {
		t.Error("a record shows the sandbox key")
	}
	// An ambiguous prefix: both ids start with "0".
	if _, err := c.Get(ctx, "0"); !errors.Is(err, sandbox.ErrAmbiguous) {
		t.Errorf("get ambiguous: %v", err)
	}
	// A name taken: 409.
	if _, err := c.Create(ctx, client.CreateRequest{Name: "web"}); !client.IsStatus(err, 409) || !errors.Is(err, sandbox.ErrConflict) {
		t.Errorf("create a taken name: %v", err)
	}
	// An image that cannot be had: 422.
	if _, err := c.Create(ctx, client.CreateRequest{Image: "missing:image"}); !client.IsStatus(err, 422) || !errors.Is(err, sandbox.ErrImage) {
		t.Errorf("create a missing image: %v", err)
	}
	// Pause, stop, resume.
	touched := h.view.touches(sb.ID)
	for _, step := range []struct {
		op   func(context.Context, string) (sandbox.Sandbox, error)
		want sandbox.Status
	}{{c.Pause, sandbox.StatusPaused}, {c.Resume, sandbox.StatusRunning}, {c.Stop, sandbox.StatusPaused}, {c.Resume, sandbox.StatusRunning}} {
		got, err := step.op(ctx, "web")
		if err != nil || got.Status != step.want {
			t.Fatalf("state change = %+v, %v; want %s", got, err, step.want)
		}
	}
	if h.view.touches(sb.ID) < touched+4 {
		t.Error("state changes do not touch the sandbox")
	}
	readies := 0
	for _, e := range h.view.events() {
		if e.Type == monitor.EventReady && e.ID == sb.ID {
			readies++
		}
	}
	if readies != 3 { // create + 2 resumes
		t.Errorf("%d ready events, want 3", readies)
	}
	// Remove: 204, then 404.
	resp, body = h.do("DELETE", client.SandboxPath(sb.ID, ""), aliceToken, "")
	if resp.StatusCode != 204 || body != "" {
		t.Fatalf("delete: %d %q", resp.StatusCode, body)
	}
	resp, body = h.do("DELETE", client.SandboxPath(sb.ID, ""), aliceToken, "")
	wantError(t, resp, body, 404, client.CodeNotFound, sb.ID)
	if err := (client.Remote{C: c}).Remove(ctx, sb.ID); err != nil {
		t.Errorf("Remote.Remove of a removed sandbox: %v", err)
	}
}

// A create answered before the view shows the sandbox is found anyway.
func TestViewLag(t *testing.T) {
	h := newHarness(t, twoTenants())
	c := h.client(aliceToken)
	h.view.hide["0100000000001eef"] = true // the first id the fake runtime gives
	sb := h.create(c, client.CreateRequest{Image: "busybox"})
	if sb.ID != "0100000000001eef" {
		t.Fatalf("id %s: the test's hidden id is stale", sb.ID)
	}
	if _, ok := h.view.Get(sb.ID); ok {
		t.Fatal("the view shows the hidden sandbox")
	}
	if got, err := c.Get(context.Background(), sb.ID); err != nil || got.ID != sb.ID {
		t.Fatalf("get = %+v, %v", got, err)
	}
	if _, _, _, err := c.ExecOutput(context.Background(), sb.ID, client.ExecRequest{Command: "hi"}); err != nil {
		t.Fatalf("exec: %v", err)
	}
	if _, err := h.client(bobToken).Get(context.Background(), sb.ID); !client.IsStatus(err, 404) {
		t.Errorf("bob gets alice's sandbox through the runtime: %v", err)
	}
}

func TestTenantIsolation(t *testing.T) {
	h := newHarness(t, twoTenants())
	alice, bob := h.client(aliceToken), h.client(bobToken)
	ctx := context.Background()
	sa := h.create(alice, client.CreateRequest{Name: "a1"})
	sb := h.create(bob, client.CreateRequest{Name: "b1"})

	_, absent := h.do("GET", client.SandboxPath("ffffffffffff", ""), bobToken, "")
	for _, ref := range []string{sa.ID, sa.ID[:6], "a1"} {
		resp, body := h.do("GET", client.SandboxPath(ref, ""), bobToken, "")
		wantError(t, resp, body, 404, client.CodeNotFound, ref)
		if strings.ReplaceAll(body, ref, "X") != strings.ReplaceAll(absent, "ffffffffffff", "X") {
			t.Errorf("another tenant's sandbox is told from an absent one: %s vs %s", body, absent)
		}
	}
	for _, tc := range []struct{ method, suffix, body string }{
		{"DELETE", "", ""}, {"POST", "/pause", ""}, {"POST", "/resume", ""}, {"POST", "/stop", ""},
		{"POST", "/exec", `{"command":"x"}`}, {"GET", "/logs", ""}, {"GET", "/agent/api/v1/files?path=x", ""},
	} {
		resp, body := h.do(tc.method, client.SandboxPath(sa.ID, tc.suffix), bobToken, tc.body)
		wantError(t, resp, body, 404, client.CodeNotFound, sa.ID)
	}
	if got, _ := alice.Get(ctx, sa.ID); got.Status != sandbox.StatusRunning {
		t.Errorf("bob changed alice's sandbox: %+v", got)
	}
	// Lists and batchGet show only one's own.
	for _, tc := range []struct {
		c    *client.Client
		mine string
	}{{alice, sa.ID}, {bob, sb.ID}} {
		page, err := tc.c.List(ctx, client.ListOptions{})
		if err != nil || len(page.Items) != 1 || page.Items[0].ID != tc.mine {
			t.Errorf("list = %+v, %v; want only %s", page, err, tc.mine)
		}
		items, err := tc.c.BatchGet(ctx, []string{sa.ID, sb.ID})
		if err != nil || len(items) != 2 || (items[0] != nil) != (tc.mine == sa.ID) || (items[1] != nil) != (tc.mine == sb.ID) {
			t.Errorf("batchGet = %v, %v", items, err)
		}
	}
	// A prefix common to both tenants' ids is not ambiguous for either.
	if got, err := bob.Get(ctx, "0"); err != nil || got.ID != sb.ID {
		t.Errorf("bob's prefix lookup sees alice's ids: %+v %v", got, err)
	}
}

func TestUntrustedTenant(t *testing.T) {
	h := newHarness(t, twoTenants())
	for _, body := range []string{
		`{"volumes":["/etc:/host-etc"]}`, `{"network":"host"}`, `{"networks":["other"]}`, `{"gpus":"all"}`,
	} {
		resp, out := h.do("POST", client.PathSandboxes, bobToken, body)
		wantError(t, resp, out, 403, client.CodeForbidden, "allow_host_access")
	}
	// alice may.
	if resp, out := h.do("POST", client.PathSandboxes, aliceToken, `{"volumes":["/tmp/x:/x"]}`); resp.StatusCode != 201 {
		t.Errorf("alice with a volume: %d %s", resp.StatusCode, out)
	}
}

func TestBadRequests(t *testing.T) {
	h := newHarness(t, twoTenants())
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	exec := client.SandboxPath(sb.ID, "/exec")
	cases := []struct {
		method, path, body string
		status             int
		code, msg          string
	}{
		{"POST", client.PathSandboxes, `{"image":`, 400, client.CodeBadRequest, "ends too soon"},
		{"POST", client.PathSandboxes, `{"image":"x",}`, 400, client.CodeBadRequest, "invalid JSON body at byte"},
		{"POST", client.PathSandboxes, `{"imagee":"x"}`, 400, client.CodeBadRequest, `unknown field "imagee"`},
		{"POST", client.PathSandboxes, `{"env":{"A":1}}`, 400, client.CodeBadRequest, `field "env": expected string`},
		{"POST", client.PathSandboxes, `{"name":"x"} {}`, 400, client.CodeBadRequest, "after the object"},
		{"POST", client.PathSandboxes, ``, 400, client.CodeBadRequest, "empty"},
		{"POST", client.PathSandboxes, `[]`, 400, client.CodeBadRequest, "expected"},
		{"POST", client.PathSandboxes, `{"memory":"lots"}`, 400, client.CodeBadRequest, `invalid size "lots"`},
		{"POST", client.PathSandboxes, `{"memory":1024}`, 400, client.CodeBadRequest, "memory 1024: at least 6m"},
		{"POST", client.PathSandboxes, `{"cpus":-1,"pids_limit":-5}`, 400, client.CodeBadRequest, "pids_limit -5"},
		{"POST", client.PathSandboxes, `{"timeout":"forever"}`, 400, client.CodeBadRequest, `invalid duration "forever"`},
		{"POST", client.PathSandboxes, `{"labels":{"berth.quota.memory":"1"}}`, 400, client.CodeBadRequest, "set by the server"},
		{"POST", client.PathSandboxes, `{"name":"-bad"}`, 400, client.CodeInvalidSpec, `name "-bad"`},
		{"POST", client.PathSandboxes, `{"labels":{"berth.id":"x"}}`, 400, client.CodeInvalidSpec, `label "berth.id"`},
		{"POST", client.PathSandboxes, `{"network":"mesh"}`, 400, client.CodeInvalidSpec, `network "mesh"`},
		{"POST", client.PathSandboxes, `{"name":"` + strings.Repeat("x", client.MaxRequestBytes) + `"}`, 413, client.CodeTooLarge, ""},
		{"GET", client.PathSandboxes + "?limit=0", "", 400, client.CodeBadRequest, `limit "0"`},
		{"GET", client.PathSandboxes + "?limit=1001", "", 400, client.CodeBadRequest, "1 to 1000"},
		{"GET", client.PathSandboxes + "?status=sleepy", "", 400, client.CodeBadRequest, `status "sleepy"`},
		{"GET", client.PathSandboxes + "?label=novalue", "", 400, client.CodeBadRequest, `label "novalue"`},
		{"GET", client.PathSandboxes + "?colour=red", "", 400, client.CodeBadRequest, `unknown query parameter "colour"`},
		{"GET", client.PathSandboxes + "?limit=1&limit=2", "", 400, client.CodeBadRequest, `"limit" given 2 times`},
		{"GET", client.PathSandboxes + "?page_id=!!", "", 400, client.CodeBadRequest, "page_id"},
		{"POST", client.PathBatchGet, `{"id":["x"]}`, 400, client.CodeBadRequest, `unknown field "id"`},
		{"POST", exec, `{}`, 400, client.CodeBadRequest, "cmd or command"},
		{"POST", exec, `{"cmd":["ls"],"command":"ls"}`, 400, client.CodeBadRequest, "not both"},
		{"POST", exec, `{"command":"ls","session":"s","cwd":"/"}`, 400, client.CodeBadRequest, "cwd: not with session"},
		{"POST", exec, `{"command":"ls","no_output_timeout_ms":5}`, 400, client.CodeBadRequest, "only with session"},
		{"POST", exec, `{"command":"ls","timeout":5}`, 400, client.CodeBadRequest, `unknown field "timeout"`},
		{"POST", exec, `{"cmd":["nope"]}`, 400, agentapi.CodeBadRequest, `program "nope" not found`},
		{"GET", client.SandboxPath(sb.ID, "/logs?tail=-1"), "", 400, client.CodeBadRequest, `tail "-1"`},
		{"GET", client.SandboxPath(sb.ID, "/logs?follow=maybe"), "", 400, client.CodeBadRequest, `follow "maybe"`},
		{"GET", client.PathEvents + "?x=1", "", 400, client.CodeBadRequest, `unknown query parameter "x"`},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path+" "+c.body[:min(len(c.body), 40)], func(t *testing.T) {
			resp, body := h.do(c.method, c.path, aliceToken, c.body)
			wantError(t, resp, body, c.status, c.code, c.msg)
		})
	}
}

func TestQuota(t *testing.T) {
	cfg := Config{Tenants: []Tenant{
		{Name: "alice", Token: aliceToken, MaxSandboxes: 2},
		{Name: "bob", Token: bobToken, MaxMemory: 1 << 30},
	}}
	h := newHarness(t, cfg)
	ctx := context.Background()
	alice, bob := h.client(aliceToken), h.client(bobToken)
	a1 := h.create(alice, client.CreateRequest{})
	h.create(alice, client.CreateRequest{})
	_, err := alice.Create(ctx, client.CreateRequest{})
	var apiErr *client.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != 429 || apiErr.Err.Code != client.CodeQuota || !strings.Contains(apiErr.Err.Message, "quota is 2") {
		t.Fatalf("third create = %v, want 429 quota", err)
	}
	// Removing one makes room.
	if err := alice.Remove(ctx, a1.ID); err != nil {
		t.Fatal(err)
	}
	h.create(alice, client.CreateRequest{})

	// Memory: a limit is needed; 512m + 512m fit in 1g, a third does not.
	resp, body := h.do("POST", client.PathSandboxes, bobToken, `{}`)
	wantError(t, resp, body, 400, client.CodeBadRequest, "needs a memory limit")
	h.create(bob, client.CreateRequest{Memory: 512 << 20})
	h.create(bob, client.CreateRequest{Memory: 512 << 20})
	resp, body = h.do("POST", client.PathSandboxes, bobToken, `{"memory":"6m"}`)
	wantError(t, resp, body, 429, client.CodeQuota, "quota is 1g")
	// alice's quota is not bob's.
	if n := len(h.view.List(monitor.Filter{Owner: "bob"})); n != 2 {
		t.Errorf("bob has %d sandboxes", n)
	}
}

// Concurrent creates cannot pass a quota together: the check and the
// create's place are one step.
func TestQuotaConcurrent(t *testing.T) {
	h := newHarness(t, Config{Tenants: []Tenant{{Name: "alice", Token: aliceToken, MaxSandboxes: 3}}})
	h.rt.gate, h.rt.entered = make(chan struct{}), make(chan struct{}, 10)
	c := h.client(aliceToken)
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := c.Create(context.Background(), client.CreateRequest{})
			errs <- err
		}()
	}
	// Three creates reach the runtime and wait there; the other five are
	// refused while those three are in flight.
	for range 3 {
		<-h.rt.entered
	}
	refused := 0
	gateOpen := false
	for range n - 3 {
		select {
		case err := <-errs:
			if !client.IsStatus(err, 429) {
				t.Errorf("create beyond the quota while others are in flight: %v", err)
			}
			refused++
		case <-h.rt.entered:
			t.Error("a fourth create reached the runtime")
			close(h.rt.gate)
			gateOpen = true
		}
		if gateOpen {
			break
		}
	}
	if !gateOpen {
		close(h.rt.gate)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil && !gateOpen {
			t.Errorf("create within the quota: %v", err)
		}
	}
	if got := len(h.view.List(monitor.Filter{Owner: "alice"})); got != 3 || refused != n-3 {
		t.Errorf("%d sandboxes, %d refused", got, refused)
	}
}

func TestPagination(t *testing.T) {
	h := newHarness(t, twoTenants())
	c := h.client(aliceToken)
	ctx := context.Background()
	var want []string
	for i := range 25 {
		labels := map[string]string{"parity": fmt.Sprint(i % 2)}
		sb := h.create(c, client.CreateRequest{Labels: labels})
		want = append([]string{sb.ID}, want...) // newest first
	}
	// Two sandboxes with the same creation time: the id orders them.
	h.rt.mu.Lock()
	for _, id := range want[:2] {
		sb := h.rt.sandboxes[id]
		sb.CreatedAt = h.rt.sandboxes[want[2]].CreatedAt
		h.rt.sandboxes[id] = sb
		h.view.put(sb)
	}
	h.rt.mu.Unlock()
	want = append(sortedIDs(want[:3]), want[3:]...)

	var got []string
	pages, pageID := 0, ""
	for {
		page, err := c.List(ctx, client.ListOptions{Limit: 10, PageID: pageID})
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, sb := range page.Items {
			got = append(got, sb.ID)
		}
		if page.NextPageID == "" {
			break
		}
		pageID = page.NextPageID
	}
	if pages != 3 || strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("%d pages: %v\nwant %v", pages, got, want)
	}
	all, err := c.ListAll(ctx, client.ListOptions{Label: map[string]string{"parity": "0"}})
	if err != nil || len(all) != 13 {
		t.Errorf("label filter: %d items, %v", len(all), err)
	}
	// A sandbox removed between pages does not shift the next page.
	first, _ := c.List(ctx, client.ListOptions{Limit: 5})
	if err := c.Remove(ctx, first.Items[4].ID); err != nil {
		t.Fatal(err)
	}
	second, _ := c.List(ctx, client.ListOptions{Limit: 5, PageID: first.NextPageID})
	if second.Items[0].ID != want[5] {
		t.Errorf("after a removal the next page starts at %s, want %s", second.Items[0].ID, want[5])
	}
	if _, err := c.Pause(ctx, want[0]); err != nil {
		t.Fatal(err)
	}
	paused, err := c.List(ctx, client.ListOptions{Status: sandbox.StatusPaused})
	if err != nil || len(paused.Items) != 1 || paused.Items[0].ID != want[0] {
		t.Errorf("status filter: %+v %v", paused, err)
	}
	resp, body := h.do("GET", client.PathSandboxes+"?status=paused", aliceToken, "")
	if resp.StatusCode != 200 || !strings.Contains(body, want[0]) {
		t.Errorf("lower-case status: %d %s", resp.StatusCode, body)
	}
	// An empty list is [] not null.
	if _, body := h.do("GET", client.PathSandboxes, bobToken, ""); !strings.Contains(body, `"items":[]`) {
		t.Errorf("empty list: %s", body)
	}
}

func sortedIDs(ids []string) []string {
	out := append([]string(nil), ids...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

func TestBatchGet(t *testing.T) {
	h := newHarness(t, twoTenants())
	c := h.client(aliceToken)
	s1 := h.create(c, client.CreateRequest{Name: "one"})
	s2 := h.create(c, client.CreateRequest{})
	items, err := c.BatchGet(context.Background(), []string{s2.ID, "nope", "one"})
	if err != nil || len(items) != 3 || items[0].ID != s2.ID || items[1] != nil || items[2].ID != s1.ID {
		t.Fatalf("batchGet = %v, %v", items, err)
	}
	resp, body := h.do("GET", client.PathBatchGet+"?ids="+s1.ID+",nope&ids="+s2.ID, aliceToken, "")
	var got client.BatchGetResponse
	if resp.StatusCode != 200 || json.Unmarshal([]byte(body), &got) != nil || len(got.Items) != 3 ||
		got.Items[0].ID != s1.ID || got.Items[1] != nil || got.Items[2].ID != s2.ID || !strings.Contains(body, "null") {
		t.Fatalf("GET batchGet: %d %s", resp.StatusCode, body)
	}
	many, _ := json.Marshal(client.BatchGetRequest{IDs: make([]string, client.MaxListLimit+1)})
	resp, body = h.do("POST", client.PathBatchGet, aliceToken, string(many))
	wantError(t, resp, body, 400, client.CodeBadRequest, "at most 1000")
}

func TestExec(t *testing.T) {
	h := newHarness(t, twoTenants())
	c := h.client(aliceToken)
	ctx := context.Background()
	sb := h.create(c, client.CreateRequest{})
	touched := h.view.touches(sb.ID)

	var types []string
	exit, err := c.Exec(ctx, sb.ID, client.ExecRequest{Cmd: []string{"exit", "3"}, Stdin: []byte("in")}, func(ev client.ExecEvent) error {
		types = append(types, ev.Type)
		return nil
	})
	if err != nil || exit.ExitCode != 3 || strings.Join(types, ",") != "start,stdout,stderr,exit" {
		t.Fatalf("exec = %+v %v, events %v", exit, err, types)
	}
	stdout, _, _, err := c.ExecOutput(ctx, sb.ID, client.ExecRequest{Command: "echo hi"})
	if err != nil || string(stdout) != "echo hi\n" {
		t.Fatalf("exec output %q %v", stdout, err)
	}
	if h.view.touches(sb.ID) < touched+2 {
		t.Error("exec does not touch the sandbox")
	}
	// The agent got the sandbox's key, never the server's token.
	if hd := h.agent.lastHeader(); hd.Get(agentapi.HeaderKey) != fakeKey || hd.Get("Authorization") != "" {
		t.Errorf("agent headers %v", hd)
	}
	// Session exec: session events; argv is quoted for the shell.
	var start client.ExecEvent
	exit, err = c.Exec(ctx, sb.ID, client.ExecRequest{Session: "main", Cmd: []string{"echo", "a b"}}, func(ev client.ExecEvent) error {
		if ev.Type == agentapi.EventStart {
			start = ev
		}
		return nil
	})
	if err != nil || start.Session != "main" || !start.NewSession || exit.Cwd != "/workspace" {
		t.Fatalf("session exec = %+v %+v %v", start, exit, err)
	}
	if p := h.agent.lastPath(); !strings.HasPrefix(p, "/api/v1/sessions/main/exec") {
		t.Errorf("session exec went to %s", p)
	}
	// SSE on request.
	resp, body := h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"exit 0"}`, "Accept", "text/event-stream")
	if resp.Header.Get("Content-Type") != "text/event-stream" || !strings.HasPrefix(body, "event: start\ndata: {") ||
		!strings.Contains(body, "event: exit\ndata: {\"type\":\"exit\"") {
		t.Errorf("SSE exec: %s %q", resp.Header.Get("Content-Type"), body)
	}
	resp, body = h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"exit 0"}`)
	if resp.Header.Get("Content-Type") != "application/x-ndjson" || strings.Count(body, "\n") != 3 {
		t.Errorf("NDJSON exec: %s %q", resp.Header.Get("Content-Type"), body)
	}
	// Not running: 409.
	if _, err := c.Pause(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	_, err = c.Exec(ctx, sb.ID, client.ExecRequest{Command: "x"}, nil)
	if !client.IsStatus(err, 409) || !errors.Is(err, sandbox.ErrNotRunning) {
		t.Errorf("exec in a paused sandbox: %v", err)
	}
}

func TestAgentProxy(t *testing.T) {
	h := newHarness(t, twoTenants())
	c := h.client(aliceToken)
	ctx := context.Background()
	sb := h.create(c, client.CreateRequest{})
	ag := c.Agent(sb.ID)

	if _, err := ag.WriteFile(ctx, "dir/a b.txt", strings.NewReader("content"), agentapi.WriteOptions{}); err != nil {
		t.Fatalf("write through the proxy: %v", err)
	}
	data, info, err := ag.ReadFileBytes(ctx, "dir/a b.txt", agentapi.ReadOptions{})
	if err != nil || string(data) != "content" || info.Path != "dir/a b.txt" {
		t.Fatalf("read through the proxy: %q %+v %v", data, info, err)
	}
	if hd := h.agent.lastHeader(); hd.Get(agentapi.HeaderKey) != fakeKey || hd.Get("Authorization") != "" {
		t.Errorf("agent headers %v", hd)
	}
	// Exec through the proxy, with the agentapi client.
	out, _, exit, err := ag.ExecOutput(ctx, agentapi.ExecRequest{Argv: []string{"exit", "4"}})
	if err != nil || exit.ExitCode != 4 || string(out) != "exit 4\n" {
		t.Fatalf("agent exec through the proxy: %q %+v %v", out, exit, err)
	}
	// An agent error passes through.
	if _, _, err := ag.ReadFileBytes(ctx, "missing", agentapi.ReadOptions{}); !strings.Contains(fmt.Sprint(err), "no file missing") {
		t.Errorf("agent 404: %v", err)
	}
	// Escaped path elements reach the agent escaped; session_api_key does not reach it.
	resp, _ := h.do("GET", client.SandboxPath(sb.ID, "/agent/api/v1/sessions/a%2Fb?session_api_key=leak&x=1"), aliceToken, "")
	if resp.StatusCode != 404 || h.agent.lastPath() != "/api/v1/sessions/a%2Fb?x=1" {
		t.Errorf("agent got %s (%d)", h.agent.lastPath(), resp.StatusCode)
	}
	// The PTY websocket passes through.
	pty, err := ag.DialPTY(ctx, agentapi.PTYOptions{Cmd: "top"})
	if err != nil {
		t.Fatalf("pty through the proxy: %v", err)
	}
	if _, err := pty.Write([]byte("typed")); err != nil {
		t.Fatal(err)
	}
	all, err := io.ReadAll(pty)
	if err != nil || string(all) != "hello toptyped" {
		t.Errorf("pty output %q %v", all, err)
	}
	if code, ok := pty.ExitCode(); !ok || code != 3 {
		t.Errorf("pty exit %d %v", code, ok)
	}
	pty.Close()
	// A paused sandbox: 409 before the agent is called.
	if _, err := c.Pause(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := ag.Stat(ctx, "x"); !strings.Contains(fmt.Sprint(err), "409") {
		t.Errorf("proxy to a paused sandbox: %v", err)
	}
}

// An agent that answers before it has read the request body (a streamed
// upload) gets the whole body through the proxy, and its whole answer comes
// back: the server must not close the request body when the answer starts.
func TestAgentProxyFullDuplex(t *testing.T) {
	h := newHarness(t, twoTenants())
	sb := h.create(h.client(aliceToken), client.CreateRequest{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pr, pw := io.Pipe()
	// Should the proxy deadlock (the server reading the body away from the
	// agent), fail instead of hanging.
	watchdog := time.AfterFunc(10*time.Second, func() {
		pw.CloseWithError(errors.New("watchdog: the proxy is stuck"))
		h.agent.CloseClientConnections()
		h.ts.CloseClientConnections()
	})
	defer watchdog.Stop()
	req, _ := http.NewRequestWithContext(ctx, "POST", h.ts.URL+client.SandboxPath(sb.ID, "/agent/api/v1/echo"), pr)
	req.ContentLength = int64(len("the body"))
	req.Header.Set("Authorization", "Bearer "+aliceToken)
	type answer struct {
		resp *http.Response
		err  error
	}
	got := make(chan answer, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		got <- answer{resp, err}
	}()
	// The answer's head comes before the body is sent.
	a := <-got
	if a.err != nil {
		t.Fatalf("proxy: %v", a.err)
	}
	defer a.resp.Body.Close()
	br := bufio.NewReader(a.resp.Body)
	if line, err := br.ReadString('\n'); err != nil || line != "started\n" {
		t.Fatalf("first line %q %v", line, err)
	}
	if _, err := io.WriteString(pw, "the body"); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	rest, err := io.ReadAll(br)
	if err != nil || string(rest) != "the body" {
		t.Fatalf("echo %q %v", rest, err)
	}
}

// An agent that does not answer is a 502 agent_unreachable.
func TestAgentDown(t *testing.T) {
	h := newHarness(t, twoTenants())
	c := h.client(aliceToken)
	sb := h.create(c, client.CreateRequest{})
	h.agent.Close()
	resp, body := h.do("GET", client.SandboxPath(sb.ID, "/agent/api/v1/files?path=x"), aliceToken, "")
	wantError(t, resp, body, 502, client.CodeAgent, "unreachable")
	resp, body = h.do("POST", client.SandboxPath(sb.ID, "/exec"), aliceToken, `{"command":"x"}`)
	wantError(t, resp, body, 502, client.CodeAgent, "unreachable")
}

func TestLogs(t *testing.T) {
	h := newHarness(t, twoTenants())
	c := h.client(aliceToken)
	sb := h.create(c, client.CreateRequest{})
	h.rt.logs = "line 1\nline 2\n"
	rc, err := c.Logs(context.Background(), sb.ID, client.LogOptions{Tail: "10"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || string(b) != "line 1\nline 2\n" {
		t.Fatalf("logs %q %v", b, err)
	}
	// Follow: lines as they come, until the caller leaves.
	ctx, cancel := context.WithCancel(context.Background())
	rc, err = c.Logs(ctx, sb.ID, client.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(rc).ReadString('\n')
	if err != nil || line != "line 1\n" {
		t.Fatalf("follow: %q %v", line, err)
	}
	cancel()
	rc.Close()
}

func TestEvents(t *testing.T) {
	h := newHarness(t, twoTenants())
	ctx := context.Background()
	alice, bob := h.client(aliceToken), h.client(bobToken)
	as, err := alice.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer as.Close()
	bs, err := bob.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer bs.Close()
	sa := h.create(alice, client.CreateRequest{})
	h.view.Publish(monitor.Event{Type: monitor.EventOOM, ID: "zz", Owner: "bob"})
	h.view.Publish(monitor.Event{Type: monitor.EventPolicy, ID: "yy", Sandbox: &sandbox.Sandbox{ID: "yy", Owner: "alice"}, Reason: "idle"})
	h.view.Publish(monitor.Event{Type: monitor.EventError, ID: "xx"}) // no owner: nobody's
	h.view.Publish(monitor.Event{Type: monitor.EventRemoved, ID: "zz", Owner: "bob"})

	for _, want := range []string{monitor.EventReady + " " + sa.ID, monitor.EventPolicy + " yy"} {
		e, err := as.Next()
		if err != nil || e.Type+" "+e.ID != want {
			t.Fatalf("alice's event = %+v %v, want %s", e, err, want)
		}
	}
	for _, want := range []string{monitor.EventOOM + " zz", monitor.EventRemoved + " zz"} {
		e, err := bs.Next()
		if err != nil || e.Type+" "+e.ID != want {
			t.Fatalf("bob's event = %+v %v, want %s", e, err, want)
		}
	}
	// The raw stream is SSE.
	req, _ := http.NewRequest("GET", h.ts.URL+client.PathEvents, nil)
	req.Header.Set("Authorization", "Bearer "+bobToken)
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := http.DefaultClient.Do(req.WithContext(rctx))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	first, _ := br.ReadString('\n')
	if resp.Header.Get("Content-Type") != "text/event-stream" || first != ": subscribed\n" {
		t.Errorf("events head %q %q", resp.Header.Get("Content-Type"), first)
	}
	_, _ = br.ReadString('\n')
	h.view.Publish(monitor.Event{Type: monitor.EventPaused, ID: "zz", Owner: "bob"})
	l1, _ := br.ReadString('\n')
	l2, _ := br.ReadString('\n')
	if l1 != "event: paused\n" || !strings.HasPrefix(l2, `data: {"type":"paused","id":"zz","owner":"bob"`) {
		t.Errorf("SSE event %q %q", l1, l2)
	}
}

func TestMetrics(t *testing.T) {
	h := newHarness(t, twoTenants())
	c := h.client(aliceToken)
	sb := h.create(c, client.CreateRequest{})
	if _, _, _, err := c.ExecOutput(context.Background(), sb.ID, client.ExecRequest{Command: "x"}); err != nil {
		t.Fatal(err)
	}
	_, _ = c.Pause(context.Background(), sb.ID)
	_, _ = c.Resume(context.Background(), sb.ID)
	_, _ = c.Get(context.Background(), "nope")
	_, body := h.do("GET", client.PathMetrics, "", "")
	for _, want := range []string{
		`berth_request_duration_seconds_count{code="201",method="POST",route="/api/v1/sandboxes"} 1`,
		`berth_request_duration_seconds_count{code="404",method="GET",route="/api/v1/sandboxes/{id}"} 1`,
		`berth_create_seconds_count 1`, `berth_exec_seconds_count 1`,
		`berth_pause_seconds_count 1`, `berth_resume_seconds_count 1`,
		`berth_errors_total{kind="not_found"} 1`, `go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

// The OpenAPI document and the routes name the same paths and methods,
// and every path of the document is routed.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(openAPI, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi %q", doc.OpenAPI)
	}
	docRoutes := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			docRoutes[strings.ToUpper(method)+" "+path] = true
		}
	}
	// Every route is documented (the proxy, for any method, with the
	// usual four).
	routed := map[string]bool{}
	for _, p := range routePatterns() {
		method, path, _ := strings.Cut(p, " ")
		path = strings.ReplaceAll(path, "{path...}", "{path}")
		methods := []string{method}
		if method == "" {
			methods = []string{"GET", "POST", "PUT", "DELETE"}
		}
		for _, m := range methods {
			routed[m+" "+path] = true
			if !docRoutes[m+" "+path] {
				t.Errorf("route %s %s is not in openapi.json", m, path)
			}
		}
	}
	// Every documented operation is routed, and the mux agrees.
	h := newHarness(t, twoTenants())
	for r := range docRoutes {
		if !routed[r] {
			t.Errorf("openapi.json has %s, which is not routed", r)
		}
		method, path, _ := strings.Cut(r, " ")
		path = strings.NewReplacer("{id}", "some-id", "{path}", "api/v1/x").Replace(path)
		req := httptest.NewRequest(method, path, nil)
		if _, pattern := h.srv.mux.Handler(req); pattern == "/" || pattern == "" {
			t.Errorf("%s %s: not routed by the mux", method, path)
		}
	}
	// The served document is this one.
	resp, body := h.do("GET", client.PathOpenAPI, "", "")
	if resp.StatusCode != 200 || !bytes.Equal([]byte(body), openAPI) {
		t.Errorf("GET openapi.json: %d", resp.StatusCode)
	}
}

func TestRuntimeView(t *testing.T) {
	fv := newFakeView()
	rt := newFakeRuntime(fv, "http://agent")
	v := NewRuntimeView(rt, nil)
	ctx, cancel := context.WithCancel(context.Background())
	ch := v.Subscribe(ctx)
	prt := v.Runtime()
	sb, err := prt.Create(ctx, sandbox.Spec{Image: sandbox.ImageSpec{Base: "x"}, Owner: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := prt.Pause(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := prt.Create(ctx, sandbox.Spec{Image: sandbox.ImageSpec{Base: "x"}, Owner: "bob"}); err != nil {
		t.Fatal(err)
	}
	if got := v.List(monitor.Filter{Owner: "alice"}); len(got) != 1 || got[0].ID != sb.ID {
		t.Errorf("list alice = %+v", got)
	}
	if got := v.List(monitor.Filter{Status: sandbox.StatusPaused}); len(got) != 1 || got[0].ID != sb.ID {
		t.Errorf("list paused = %+v", got)
	}
	if got, ok := v.Get(sb.ID); !ok || got.ID != sb.ID {
		t.Errorf("get = %+v %v", got, ok)
	}
	if err := prt.Remove(ctx, sb.ID); err != nil {
		t.Fatal(err)
	}
	var types []string
	for range 4 {
		e := <-ch
		types = append(types, e.Type)
	}
	if strings.Join(types, ",") != "created,paused,created,removed" {
		t.Errorf("events %v", types)
	}
	cancel()
	if _, ok := <-ch; ok {
		t.Error("the subscription stays open after its ctx ended")
	}
}

// The monitor is the server's live view.
var _ View = (*monitor.Monitor)(nil)
