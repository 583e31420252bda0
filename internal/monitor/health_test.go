package monitor

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// fakeAgents answers health checks per sandbox id: healthy, failing or
// hung (blocks until the check's ctx ends).
type fakeAgents struct {
	mu       sync.Mutex
	fail     map[string]error
	hung     map[string]bool
	checks   map[string][]time.Time
	inFlight int
	maxIn    int
}

func newFakeAgents() *fakeAgents {
	return &fakeAgents{fail: map[string]error{}, hung: map[string]bool{}, checks: map[string][]time.Time{}}
}

func (a *fakeAgents) set(id string, err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.fail[id] = err
}

func (a *fakeAgents) check(ctx context.Context, sb sandbox.Sandbox) error {
	a.mu.Lock()
	a.checks[sb.ID] = append(a.checks[sb.ID], time.Now())
	a.inFlight++
	a.maxIn = max(a.maxIn, a.inFlight)
	hung, err := a.hung[sb.ID], a.fail[sb.ID]
	a.mu.Unlock()
	defer func() {
		a.mu.Lock()
		a.inFlight--
		a.mu.Unlock()
	}()
	if hung {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (a *fakeAgents) times(id string) []time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.checks[id])
}

func TestHealthFlip(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		agents := newFakeAgents()
		h := start(t, eng, Options{Health: agents.check, HealthInterval: 10 * time.Second, HealthFailures: 2, StartupGrace: 15 * time.Second})
		defer h.stop()
		t0 := time.Now()
		cid := eng.create("s1", nil)
		eng.start(cid)
		paused := eng.create("p1", nil)
		eng.start(paused)
		eng.pause(paused)
		synctest.Wait()
		h.drain()
		agents.set("s1", errors.New("connection refused"))

		step := func(at time.Duration, want sandbox.Status, wantEvents ...string) {
			t.Helper()
			time.Sleep(t0.Add(at).Sub(time.Now()))
			synctest.Wait()
			if got := h.status("s1"); got != want {
				t.Errorf("at %s: status %s, want %s", at, got, want)
			}
			var got []string
			for _, e := range h.drain() {
				got = append(got, e.Type+":"+e.Reason)
			}
			if !slices.Equal(got, wantEvents) {
				t.Errorf("at %s: events %q, want %q", at, got, wantEvents)
			}
		}
		step(10*time.Second+time.Millisecond, sandbox.StatusRunning) // failure in the grace: not counted
		step(20*time.Second+time.Millisecond, sandbox.StatusRunning) // 1st failure
		step(30*time.Second+time.Millisecond, sandbox.StatusError, "error:health check failed: connection refused")
		if sb, _ := h.m.Get("s1"); sb.Reason != "health check failed: connection refused" || sb.State != stateRunning {
			t.Errorf("unhealthy record: reason %q state %s", sb.Reason, sb.State)
		}
		step(40*time.Second+time.Millisecond, sandbox.StatusError) // still failing: no new event
		agents.set("s1", nil)
		step(50*time.Second+time.Millisecond, sandbox.StatusRunning, "healthy:health check passed")
		if sb, _ := h.m.Get("s1"); sb.Reason != "" {
			t.Errorf("healthy again, reason %q", sb.Reason)
		}
		if n := len(agents.times("s1")); n != 5 {
			t.Errorf("%d checks of s1, want 5 (one per interval)", n)
		}
		if n := len(agents.times("p1")); n != 0 {
			t.Errorf("a paused sandbox was checked %d times", n)
		}

		// Failing again, then paused while ERROR: the verdict goes with
		// the state change, and a thawed sandbox starts with a clean slate.
		agents.set("s1", errors.New("timeout"))
		step(70*time.Second+time.Millisecond, sandbox.StatusError, "error:health check failed: timeout")
		eng.pause(cid)
		synctest.Wait()
		if got := h.status("s1"); got != sandbox.StatusPaused {
			t.Errorf("paused while ERROR: %s", got)
		}
		eng.unpause(cid)
		step(71*time.Second, sandbox.StatusRunning, "paused:", "resumed:")
	})
}

// A restart of the container starts a new grace.
func TestHealthGraceAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		agents := newFakeAgents()
		cid := eng.add("s1", stateRunning, time.Now().Add(-time.Hour), nil)
		h := start(t, eng, Options{Health: agents.check, HealthInterval: 10 * time.Second, HealthFailures: 1, StartupGrace: 15 * time.Second})
		defer h.stop()
		eng.stop(cid, 0)
		eng.start(cid)
		synctest.Wait()
		agents.set("s1", errors.New("not yet"))
		time.Sleep(10*time.Second + time.Millisecond)
		synctest.Wait()
		if got := h.status("s1"); got != sandbox.StatusRunning {
			t.Errorf("failure 10s after the start (grace 15s): %s", got)
		}
		time.Sleep(10 * time.Second)
		synctest.Wait()
		if got := h.status("s1"); got != sandbox.StatusError {
			t.Errorf("failure 20s after the start: %s", got)
		}
	})
}

// Checks run concurrently, bounded by HealthWorkers: a hung agent holds a
// worker for one timeout and delays no other sandbox's check.
func TestHealthConcurrent(t *testing.T) {
	for _, tc := range []struct {
		workers, hung  int
		minIn, maxIn   int  // checks in flight at once
		promptVerdicts bool // every check starts within one timeout of the tick
	}{
		{workers: 16, hung: 5, minIn: 5, maxIn: 6, promptVerdicts: true},
		{workers: 2, hung: 3, minIn: 2, maxIn: 2}, // the pool is the bound
	} {
		synctest.Test(t, func(t *testing.T) {
			eng := newFakeEngine()
			agents := newFakeAgents()
			for i := range 6 {
				id := string(rune('a' + i))
				eng.add(id, stateRunning, time.Now().Add(-time.Hour), nil)
				if i < tc.hung {
					agents.hung[id] = true
				}
			}
			h := start(t, eng, Options{Health: agents.check, HealthInterval: 10 * time.Second, HealthTimeout: 2 * time.Second, HealthWorkers: tc.workers, HealthFailures: 1, StartupGrace: -1})
			defer h.stop()
			agents.set("f", errors.New("refused"))
			tick := time.Now().Add(10 * time.Second)
			time.Sleep(10*time.Second + time.Millisecond)
			synctest.Wait()
			// The healthy-but-failing agent's verdict is in before any hung
			// check has timed out.
			if tc.promptVerdicts {
				if got := h.status("f"); got != sandbox.StatusError {
					t.Errorf("workers %d: f is %s while %d checks hang, want ERROR at once", tc.workers, got, tc.hung)
				}
			}
			agents.mu.Lock()
			maxIn := agents.maxIn
			agents.mu.Unlock()
			if maxIn < tc.minIn || maxIn > tc.maxIn {
				t.Errorf("workers %d: %d checks at once, want %d..%d", tc.workers, maxIn, tc.minIn, tc.maxIn)
			}
			time.Sleep(7 * time.Second) // past every timeout, before the next round
			synctest.Wait()
			for i := range 6 {
				id := string(rune('a' + i))
				ts := agents.times(id)
				if len(ts) != 1 {
					t.Errorf("workers %d: %s checked %d times in one round", tc.workers, id, len(ts))
					continue
				}
				if delay := ts[0].Sub(tick); tc.promptVerdicts && delay > 0 {
					t.Errorf("workers %d: %s checked %s after the tick", tc.workers, id, delay)
				}
			}
			for i := range tc.hung {
				if got := h.status(string(rune('a' + i))); got != sandbox.StatusError {
					t.Errorf("workers %d: hung agent is %s, want ERROR", tc.workers, got)
				}
			}
		})
	}
}

// The default check: GET AgentURL+HealthPath with the key, over TCP or a
// unix socket; 2xx is healthy.
func TestHTTPHealth(t *testing.T) {
	var mu sync.Mutex
	status := http.StatusOK
	var gotKey, gotPath string
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		gotKey, gotPath = r.Header.Get(agentapi.HeaderKey), r.URL.Path
		w.WriteHeader(status)
	})
	srv := httptest.NewServer(handler)
	defer srv.Close()
	sock := filepath.Join(t.TempDir(), "agent.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	usrv := &http.Server{Handler: handler}
	go usrv.Serve(ln)
	defer usrv.Close()

	eng := newFakeEngine()
	m, err := New(Options{Engine: eng, Runtime: &fakeRuntime{eng: eng}, Records: records(), HealthPath: "/custom/ready"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, url := range []string{srv.URL, "unix://" + sock} {
		sb := sandbox.Sandbox{AgentURL: url, Key: "k1"}
		mu.Lock()
		status = http.StatusOK
		mu.Unlock()
		if err := m.httpHealth(ctx, sb); err != nil {
			t.Errorf("%s: healthy agent: %v", url, err)
		}
		mu.Lock()
		if gotKey != "k1" || gotPath != "/custom/ready" {
			t.Errorf("%s: request path %q key %q", url, gotPath, gotKey)
		}
		status = http.StatusNotFound
		mu.Unlock()
		if err := m.httpHealth(ctx, sb); err == nil || !strings.Contains(err.Error(), "404") {
			t.Errorf("%s: 404 answer gave %v", url, err)
		}
	}
	if err := m.httpHealth(ctx, sandbox.Sandbox{}); err == nil {
		t.Error("no agent URL: no error")
	}
	gone := "unix://" + filepath.Join(t.TempDir(), "gone.sock")
	if err := m.httpHealth(ctx, sandbox.Sandbox{AgentURL: gone}); err == nil || !strings.HasPrefix(err.Error(), "GET "+gone+"/custom/ready: ") {
		t.Errorf("unreachable socket: %v", err)
	}
}
