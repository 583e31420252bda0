package server

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/client"
)

// fakePools are warm pools in memory: Resize sets a pool's size and
// records the call.
type fakePools struct {
	mu      sync.Mutex
	stats   []client.PoolStats
	resizes []string // "KEY=SIZE", in order
}

func newFakePools() *fakePools {
	return &fakePools{stats: []client.PoolStats{
		{Key: "0123456789abcdef", Image: "busybox", Network: "bridge", Memory: 64 << 20, Size: 2, Ready: 2, Claims: 5, Misses: 1},
		{Key: "fedcba9876543210", Image: "debian:bookworm-slim", Network: "none", NanoCPUs: 5e8, Size: 1, Filling: 1,
			Failures: 3, LastError: "pull: not found", RetryAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)},
	}}
}

func (f *fakePools) Stats() []client.PoolStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.stats)
}

func (f *fakePools) Resize(key string, size int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.stats {
		if f.stats[i].Key == key {
			f.stats[i].Size = size
			f.resizes = append(f.resizes, fmt.Sprintf("%s=%d", key, size))
			return nil
		}
	}
	return fmt.Errorf("resize pool %s: no such shape", key)
}

func (f *fakePools) calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.resizes)
}

// adminTenants: alice is an admin, bob is not.
func adminTenants() Config {
	cfg := twoTenants()
	cfg.Tenants[0].Admin = true
	return cfg
}

// Every tenant reads the pools; only an admin resizes one; a bad body or
// an unknown key is named and changes nothing.
func TestPools(t *testing.T) {
	fp := newFakePools()
	h := newHarnessWith(t, Options{Config: adminTenants(), Pools: fp})
	ctx := t.Context()

	// Any tenant reads them, in order, with every field, no sandbox id.
	for _, tok := range []string{aliceToken, bobToken} {
		got, err := h.client(tok).Pools(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[0] != fp.stats[0] || !got[1].RetryAt.Equal(fp.stats[1].RetryAt) || got[1].LastError != "pull: not found" {
			t.Fatalf("pools = %+v", got)
		}
	}
	resp, body := h.do("GET", client.PathPools, bobToken, "")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET pools: %d %s", resp.StatusCode, body)
	}
	var raw struct {
		Items []map[string]any `json:"items"`
	}
	if err := json.Unmarshal([]byte(body), &raw); err != nil || len(raw.Items) != 2 {
		t.Fatalf("GET pools body %s: %v", body, err)
	}
	for _, k := range []string{"key", "image", "network", "memory", "size", "ready", "filling", "claims", "misses", "failures"} {
		if _, ok := raw.Items[0][k]; !ok {
			t.Errorf("pool item lacks %q: %s", k, body)
		}
	}
	for _, k := range []string{"nano_cpus", "last_error", "retry_at"} {
		if _, ok := raw.Items[1][k]; !ok {
			t.Errorf("pool item lacks %q: %s", k, body)
		}
	}
	resp, body = h.do("GET", client.PathPools, "", "")
	wantError(t, resp, body, 401, client.CodeUnauthorized, "")
	resp, body = h.do("GET", client.PathPools+"?key=x", aliceToken, "")
	wantError(t, resp, body, 400, client.CodeBadRequest, `"key"`)

	key := fp.stats[0].Key
	path := client.PathPools + "/" + key
	// A tenant that is not an admin may not resize, whatever the body.
	for _, b := range []string{`{"size":0}`, `{"size":-1}`, ``} {
		resp, body = h.do("PUT", path, bobToken, b)
		wantError(t, resp, body, 403, client.CodeForbidden, "admin")
	}
	if _, err := h.client(bobToken).ResizePool(ctx, key, 0); !client.IsStatus(err, 403) || !strings.Contains(err.Error(), `tenant "bob"`) {
		t.Errorf("bob resizes: %v", err)
	}
	// Bad bodies are named, and change nothing.
	for _, tc := range []struct{ body, msg string }{
		{`{}`, `"size" is missing`},
		{`{"size":-1}`, "0 to 1000"},
		{`{"size":1001}`, "0 to 1000"},
		{`{"size":"3"}`, `"size"`},
		{`{"size":1.5}`, `"size"`},
		{`{"size":1,"sise":2}`, `"sise"`},
		{``, "empty"},
		{`{"size":1} {}`, "after the object"},
	} {
		resp, body = h.do("PUT", path, aliceToken, tc.body)
		wantError(t, resp, body, 400, client.CodeBadRequest, tc.msg)
	}
	resp, body = h.do("PUT", client.PathPools+"/no-such-shape", aliceToken, `{"size":1}`)
	wantError(t, resp, body, 404, client.CodeNotFound, `"no-such-shape"`)
	if c := fp.calls(); len(c) != 0 || fp.Stats()[0].Size != 2 {
		t.Fatalf("refused resizes reached the pools: %v %+v", c, fp.Stats())
	}

	// The admin resizes: the answer is the pool's new state.
	st, err := h.client(aliceToken).ResizePool(ctx, key, 0)
	if err != nil || st.Key != key || st.Size != 0 || st.Image != "busybox" {
		t.Fatalf("resize to 0: %+v, %v", st, err)
	}
	resp, body = h.do("PUT", path, aliceToken, `{"size":1000}`)
	if resp.StatusCode != 200 || !strings.Contains(body, `"size":1000`) {
		t.Fatalf("resize to 1000: %d %s", resp.StatusCode, body)
	}
	if c := fp.calls(); strings.Join(c, ",") != key+"=0,"+key+"=1000" {
		t.Errorf("resizes %v", c)
	}
	if got, _ := h.client(bobToken).Pools(ctx); got[0].Size != 1000 || got[1].Size != 1 {
		t.Errorf("after the resizes: %+v", got)
	}
	resp, body = h.do("GET", path, aliceToken, "")
	wantError(t, resp, body, 405, client.CodeMethodNotAllowed, "PUT")
}

// A server without pools lists none and resizes none.
func TestNoPools(t *testing.T) {
	h := newHarness(t, adminTenants())
	resp, body := h.do("GET", client.PathPools, bobToken, "")
	if resp.StatusCode != 200 || strings.TrimSpace(body) != `{"items":[]}` {
		t.Errorf("GET pools without pools: %d %s", resp.StatusCode, body)
	}
	resp, body = h.do("PUT", client.PathPools+"/0123456789abcdef", aliceToken, `{"size":1}`)
	wantError(t, resp, body, 404, client.CodeNotFound, "0123456789abcdef")
}

// Without tokens, the one tenant, local, is an admin: it resizes pools.
func TestLocalIsAdmin(t *testing.T) {
	fp := newFakePools()
	h := newHarnessWith(t, Options{Pools: fp})
	st, err := h.client("").ResizePool(t.Context(), fp.stats[1].Key, 3)
	if err != nil || st.Size != 3 {
		t.Fatalf("local resizes: %+v, %v", st, err)
	}
	if !h.srv.tenants.local.Admin {
		t.Error("the local tenant is not an admin")
	}
	// A configured tenant is an admin only when it says so.
	ts, err := newTenants(adminTenants().Tenants)
	if err != nil {
		t.Fatal(err)
	}
	if !ts.list[0].Admin || ts.list[1].Admin {
		t.Errorf("admin flags: alice %v, bob %v", ts.list[0].Admin, ts.list[1].Admin)
	}
}
