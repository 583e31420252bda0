package monitor

import (
	"context"
	"maps"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/internal/sandbox"
)

func TestReconcileRemovesOnlyStaleCreates(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		t0 := time.Now()
		eng.add("stale", stateCreated, t0.Add(-3*time.Minute), nil)
		eng.add("fresh", stateCreated, t0.Add(-30*time.Second), nil)
		eng.add("running", stateRunning, t0.Add(-time.Hour), nil)
		eng.add("exited", stateExited, t0.Add(-time.Hour), nil)
		eng.add("", stateCreated, t0.Add(-time.Hour), map[string]string{"app": "not berth's"})
		var mu sync.Mutex
		var lives []map[string]bool
		release := func(_ context.Context, live map[string]bool) error {
			mu.Lock()
			defer mu.Unlock()
			lives = append(lives, maps.Clone(live))
			return nil
		}
		h := start(t, eng, Options{ReconcileInterval: time.Minute, CreateGrace: 2 * time.Minute, ReleaseOrphans: release})
		defer h.stop()
		synctest.Wait()

		removed := func() []string {
			var ids []string
			for _, c := range h.rt.callsOf("remove") {
				ids = append(ids, c.id)
			}
			return ids
		}
		if got := removed(); !slices.Equal(got, []string{"stale"}) {
			t.Fatalf("first pass removed %v, want [stale]", got)
		}
		if _, ok := h.m.Get("stale"); ok {
			t.Error("stale create still in the view")
		}
		if pe := policyEvents(h); len(pe) != 1 || pe[0] != "stale: create never finished (created 3m0s ago): removed" {
			t.Errorf("policy events %q", pe)
		}
		mu.Lock()
		if len(lives) != 1 || !maps.Equal(lives[0], map[string]bool{"fresh": true, "running": true, "exited": true}) {
			t.Errorf("ReleaseOrphans got %v, want the live sandboxes", lives)
		}
		mu.Unlock()

		// fresh passes its grace by the third pass (t0+2m is not past it).
		time.Sleep(2*time.Minute + time.Millisecond)
		synctest.Wait()
		if got := removed(); !slices.Equal(got, []string{"stale", "fresh"}) {
			t.Errorf("removed %v, want stale then fresh", got)
		}
		if sb, _ := h.m.Get("running"); sb.Status != sandbox.StatusRunning {
			t.Errorf("running sandbox: %s", sb.Status)
		}
		mu.Lock()
		if n := len(lives); n != 3 {
			t.Errorf("ReleaseOrphans called %d times in 2 minutes, want 3", n)
		}
		mu.Unlock()
	})
}

// The reconciler's re-list corrects a view that the event stream left
// wrong (here: an event the stream never delivered).
func TestReconcileCorrectsView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		cid := eng.add("a", stateRunning, time.Now().Add(-time.Hour), nil)
		h := start(t, eng, Options{ReconcileInterval: time.Minute})
		defer h.stop()
		eng.set(cid, func(c *fakeContainer) { c.state = statePaused }) // no event
		synctest.Wait()
		if got := h.status("a"); got != sandbox.StatusRunning {
			t.Fatalf("before the reconciler: %s", got)
		}
		time.Sleep(time.Minute)
		synctest.Wait()
		if got := h.status("a"); got != sandbox.StatusPaused {
			t.Errorf("after the reconciler: %s, want PAUSED", got)
		}
		if got := summary(h.drain()); !slices.Equal(got, []string{"paused:a"}) {
			t.Errorf("events %v", got)
		}
	})
}
