package monitor

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/berth-dev/berth/internal/sandbox"
)

// policyEvents returns the reasons of the policy events published so far.
func policyEvents(h *harness) []string {
	var out []string
	for _, e := range h.drain() {
		if e.Type == EventPolicy {
			out = append(out, e.ID+": "+e.Reason)
		}
	}
	return out
}

func TestMaxRunningPausesOldest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		t0 := time.Now()
		eng.add("old", stateRunning, t0.Add(-3*time.Hour), nil)
		eng.add("mid", stateRunning, t0.Add(-2*time.Hour), nil)
		eng.add("new", stateRunning, t0.Add(-1*time.Hour), nil)
		eng.add("idle", statePaused, t0.Add(-4*time.Hour), nil)
		h := start(t, eng, Options{Policy: Policy{MaxRunning: 2}})
		defer h.stop()
		synctest.Wait()
		if got := h.rt.callsOf(""); len(got) != 1 || got[0].op != "pause" || got[0].id != "old" || !got[0].at.Equal(t0) {
			t.Fatalf("calls %v, want one pause of old, at once", got)
		}
		if got := policyEvents(h); !slices.Equal(got, []string{"old: max running 2: paused"}) {
			t.Errorf("policy events %q", got)
		}
		if got := h.status("old"); got != sandbox.StatusPaused {
			t.Errorf("old is %s", got)
		}

		// A new sandbox makes three again: the oldest running one goes.
		time.Sleep(time.Minute)
		cid := eng.create("newest", nil)
		eng.start(cid)
		synctest.Wait()
		if got := h.rt.callsOf("pause"); len(got) != 2 || got[1].id != "mid" {
			t.Fatalf("calls %v, want mid paused second", got)
		}

		// Resuming the oldest sandbox does not get it paused at once: the
		// one that has been running longest goes instead.
		time.Sleep(time.Minute)
		eng.unpause(eng.cid("old"))
		synctest.Wait()
		if got := h.rt.callsOf("pause"); len(got) != 3 || got[2].id != "new" {
			t.Fatalf("calls %v, want new paused third", got)
		}
		running := h.m.List(Filter{Status: sandbox.StatusRunning})
		if len(running) != 2 {
			t.Errorf("%d running, want 2", len(running))
		}
	})
}

func TestIdleFiresAtDeadlineAndTouchPostpones(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		h := start(t, eng, Options{Policy: Policy{IdleTimeout: 10 * time.Minute}})
		defer h.stop()
		t0 := time.Now()
		a := eng.create("a", nil)
		eng.start(a)
		b := eng.create("b", nil)
		eng.start(b)
		synctest.Wait()

		time.Sleep(4 * time.Minute)
		h.m.Touch("b") // b's deadline moves to t0+14m
		time.Sleep(6*time.Minute - time.Second)
		synctest.Wait()
		if got := h.rt.callsOf(""); len(got) != 0 {
			t.Fatalf("acted before the deadline: %v", got)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		got := h.rt.callsOf("")
		if len(got) != 1 || got[0].id != "a" || got[0].op != "pause" {
			t.Fatalf("calls %v, want a paused", got)
		}
		if d := got[0].at.Sub(t0.Add(10 * time.Minute)); d < 0 || d > time.Second {
			t.Errorf("a paused %s after its deadline, want within 1s", d)
		}
		if pe := policyEvents(h); !slices.Equal(pe, []string{"a: idle 10m0s: paused"}) {
			t.Errorf("policy events %q", pe)
		}
		time.Sleep(4 * time.Minute)
		synctest.Wait()
		got = h.rt.callsOf("")
		if len(got) != 2 || got[1].id != "b" {
			t.Fatalf("calls %v, want b paused at t0+14m", got)
		}
		if d := got[1].at.Sub(t0.Add(14 * time.Minute)); d < 0 || d > time.Second {
			t.Errorf("b paused %s after its touched deadline", d)
		}
		// A paused sandbox is not paused again.
		time.Sleep(time.Hour)
		synctest.Wait()
		if n := len(h.rt.callsOf("")); n != 2 {
			t.Errorf("%d calls after an hour more, want 2", n)
		}
		// A resume counts as activity.
		eng.unpause(a)
		time.Sleep(10*time.Minute - time.Second)
		synctest.Wait()
		if n := len(h.rt.callsOf("")); n != 2 {
			t.Errorf("paused again %d calls before the deadline", n)
		}
		time.Sleep(2 * time.Second)
		synctest.Wait()
		if n := len(h.rt.callsOf("")); n != 3 {
			t.Errorf("%d calls, want a paused again 10m after its resume", n)
		}
	})
}

func TestIdleStop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		eng.add("run", stateRunning, time.Now().Add(-time.Hour), nil)
		eng.add("frozen", statePaused, time.Now().Add(-time.Hour), nil)
		eng.add("off", stateExited, time.Now().Add(-time.Hour), nil)
		h := start(t, eng, Options{Policy: Policy{IdleTimeout: time.Minute, IdleAction: IdleActionStop}})
		defer h.stop()
		time.Sleep(time.Minute + time.Second)
		synctest.Wait()
		var ids []string
		for _, c := range h.rt.callsOf("stop") {
			ids = append(ids, c.id)
		}
		slices.Sort(ids)
		if !slices.Equal(ids, []string{"frozen", "run"}) {
			t.Errorf("stopped %v, want frozen and run (idle since the monitor saw them)", ids)
		}
		if got := h.status("run"); got != sandbox.StatusPaused {
			t.Errorf("run is %s after the stop", got)
		}
		pe := policyEvents(h)
		slices.Sort(pe)
		if !slices.Equal(pe, []string{"frozen: idle 1m0s: stopped", "run: idle 1m0s: stopped"}) {
			t.Errorf("policy events %q", pe)
		}
	})
}

func TestTTLRemoves(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		t0 := time.Now()
		eng.add("old", statePaused, t0.Add(-50*time.Minute), nil)
		eng.add("young", stateRunning, t0.Add(-10*time.Minute), nil)
		eng.add("foreign", stateRunning, t0.Add(-2*time.Hour), map[string]string{sandbox.LabelID: "foreign"}) // no owner label
		h := start(t, eng, Options{Policy: Policy{TTL: time.Hour}})
		defer h.stop()
		time.Sleep(10*time.Minute + time.Millisecond)
		synctest.Wait()
		got := h.rt.callsOf("")
		if len(got) != 1 || got[0].op != "remove" || got[0].id != "old" || !got[0].at.Equal(t0.Add(10*time.Minute)) {
			t.Fatalf("calls %v, want old removed at t0+10m", got)
		}
		if _, ok := h.m.Get("old"); ok {
			t.Error("removed sandbox still in the view")
		}
		evs := h.drain()
		var types []string
		for _, e := range evs {
			types = append(types, e.Type+":"+e.ID+":"+e.Reason)
		}
		if !slices.Contains(types, "removed:old:") || !slices.Contains(types, "policy:old:ttl 1h0m0s: removed") {
			t.Errorf("events %q", types)
		}
		time.Sleep(40 * time.Minute)
		synctest.Wait()
		got = h.rt.callsOf("")
		if len(got) != 2 || got[1].id != "young" || !got[1].at.Equal(t0.Add(50*time.Minute)) {
			t.Errorf("calls %v, want young removed at t0+50m", got)
		}
		for _, c := range got {
			if c.id == "foreign" {
				t.Error("a sandbox without an owner label was acted on")
			}
		}
	})
}

// A failing action is retried after policyRetry, not in a tight loop.
func TestPolicyRetriesFailedAction(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		eng.add("a", stateRunning, time.Now().Add(-2*time.Hour), nil)
		rt := &fakeRuntime{eng: eng, fail: errors.New("engine busy")}
		h := start(t, eng, Options{Runtime: rt, Policy: Policy{TTL: time.Hour}})
		defer h.stop()
		synctest.Wait()
		time.Sleep(policyRetry - time.Second)
		synctest.Wait()
		if n := len(h.rt.callsOf("")); n != 1 {
			t.Fatalf("%d attempts within the retry delay, want 1", n)
		}
		h.rt.mu.Lock()
		h.rt.fail = nil
		h.rt.mu.Unlock()
		time.Sleep(policyRetry)
		synctest.Wait()
		if _, ok := h.m.Get("a"); ok {
			t.Error("not removed after the retry")
		}
		if pe := policyEvents(h); len(pe) != 1 || !strings.Contains(pe[0], "ttl") {
			t.Errorf("policy events %q", pe)
		}
	})
}
