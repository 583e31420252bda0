package monitor

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/sandbox"
)

func TestNewValidates(t *testing.T) {
	eng := newFakeEngine()
	ok := Options{Engine: eng, Runtime: &fakeRuntime{eng: eng}, Records: records()}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string
	}{
		{"no engine", func(o *Options) { o.Engine = nil }, "Engine is required"},
		{"no runtime", func(o *Options) { o.Runtime = nil }, "Runtime is required"},
		{"no records", func(o *Options) { o.Records = nil }, "Records is required"},
		{"bad idle action", func(o *Options) { o.Policy.IdleAction = "rm" }, `IdleAction "rm"`},
		{"negative ttl", func(o *Options) { o.Policy.TTL = -time.Second }, "must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := ok
			tc.edit(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
	if _, err := New(ok); err != nil {
		t.Fatalf("New with the required options: %v", err)
	}
}

func TestSyncBuildsViewFromOneList(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		t0 := time.Now()
		eng.add("aaa111", stateRunning, t0.Add(-3*time.Hour), nil)
		eng.add("bbb222", statePaused, t0.Add(-2*time.Hour), berthLabels("bbb222", "bob"))
		cidC := eng.add("ccc333", stateExited, t0.Add(-1*time.Hour), nil)
		eng.set(cidC, func(c *fakeContainer) { c.exit = 3 })
		eng.add("", stateRunning, t0, map[string]string{"other": "x"}) // not berth's
		h := start(t, eng, Options{})
		defer h.stop()

		if lists, _ := eng.counts(); lists != 1 {
			t.Errorf("%d lists, want 1", lists)
		}
		got := h.m.List(Filter{})
		var ids []string
		for _, sb := range got {
			ids = append(ids, sb.ID+"="+string(sb.Status))
		}
		want := []string{"ccc333=PAUSED", "bbb222=PAUSED", "aaa111=RUNNING"} // newest first
		if !slices.Equal(ids, want) {
			t.Fatalf("List = %v, want %v", ids, want)
		}
		if got[0].ExitCode != 3 || got[0].State != stateExited {
			t.Errorf("exited sandbox: state %s exit %d, want exited 3", got[0].State, got[0].ExitCode)
		}
		if got[2].AgentURL != "http://127.0.0.1:31000" || got[2].Owner != "alice" {
			t.Errorf("record from the list: agent %q owner %q", got[2].AgentURL, got[2].Owner)
		}

		// Filters.
		if l := h.m.List(Filter{Owner: "bob"}); len(l) != 1 || l[0].ID != "bbb222" {
			t.Errorf("owner filter: %v", l)
		}
		if l := h.m.List(Filter{Status: sandbox.StatusRunning}); len(l) != 1 || l[0].ID != "aaa111" {
			t.Errorf("status filter: %v", l)
		}
		// Get by id, name and prefix; not by an ambiguous or unknown ref.
		for _, ref := range []string{"aaa111", "name-aaa111", "aa"} {
			if sb, ok := h.m.Get(ref); !ok || sb.ID != "aaa111" {
				t.Errorf("Get(%q) = %s, %v", ref, sb.ID, ok)
			}
		}
		for _, ref := range []string{"", "zzz", "name-zzz"} {
			if _, ok := h.m.Get(ref); ok {
				t.Errorf("Get(%q) found something", ref)
			}
		}

		// The keys come from inspects after the sync.
		synctest.Wait()
		if sb, _ := h.m.Get("aaa111"); sb.Key != "key-aaa111" {
			t.Errorf("key after enrichment = %q", sb.Key)
		}
		if _, inspects := eng.counts(); inspects != 3 {
			t.Errorf("%d inspects, want 3 (one per sandbox, after the sync)", inspects)
		}
		// A record handed out cannot change the view.
		sb, _ := h.m.Get("aaa111")
		sb.URLs["agent"] = "changed"
		if again, _ := h.m.Get("aaa111"); again.URLs["agent"] == "changed" {
			t.Error("Get returned the view's own map")
		}
		if evs := h.drain(); len(evs) != 0 {
			t.Errorf("the first sync published %v", summary(evs))
		}
	})
}

// A restarted server with 100 sandboxes serves the same view within 1 s:
// one list, no inspect before Synced.
func TestSync100(t *testing.T) {
	eng := newFakeEngine()
	t0 := time.Now()
	for i := range 100 {
		eng.add(fmt.Sprintf("sb%03d", i), []string{stateRunning, statePaused, stateExited}[i%3], t0.Add(time.Duration(i)*time.Second), nil)
	}
	eng.mu.Lock()
	eng.inspects = 0
	eng.mu.Unlock()
	// Inspects are made slow: if the sync made any, it would take > 1 s.
	slow := &slowInspect{fakeEngine: eng, delay: 20 * time.Millisecond}
	m, err := New(Options{Engine: slow, Runtime: &fakeRuntime{eng: eng}, Records: records(), HealthInterval: -1, ReconcileInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	began := time.Now()
	go func() { done <- m.Run(ctx) }()
	select {
	case <-m.Synced():
	case <-time.After(5 * time.Second):
		t.Fatal("not synced after 5s")
	}
	took := time.Since(began)
	lists, inspects := eng.counts()
	n := len(m.List(Filter{}))
	cancel()
	<-done
	t.Logf("synced 100 sandboxes in %s (%d list, %d inspects by then)", took, lists, inspects)
	if n != 100 {
		t.Errorf("view has %d sandboxes, want 100", n)
	}
	if took > time.Second {
		t.Errorf("sync took %s, want < 1s", took)
	}
	if lists != 1 {
		t.Errorf("%d lists before Synced, want 1", lists)
	}
}

type slowInspect struct {
	*fakeEngine
	delay time.Duration
}

func (s *slowInspect) ContainerInspect(ctx context.Context, id string, o client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	time.Sleep(s.delay)
	return s.fakeEngine.ContainerInspect(ctx, id, o)
}

func TestEventsUpdateViewAndPublish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		h := start(t, eng, Options{})
		defer h.stop()

		steps := []struct {
			name       string
			do         func(cid string)
			wantEvents []string // type[:reason substring]
			wantStatus sandbox.Status
			wantState  string
		}{
			{"start", func(cid string) { eng.start(cid) }, nil, sandbox.StatusRunning, stateRunning},
			{"pause", func(cid string) { eng.pause(cid) }, []string{"paused"}, sandbox.StatusPaused, statePaused},
			{"unpause", func(cid string) { eng.unpause(cid) }, []string{"resumed"}, sandbox.StatusRunning, stateRunning},
			{"docker stop", func(cid string) { eng.stop(cid, 143) }, []string{"stopped:exit code 143"}, sandbox.StatusPaused, stateExited},
			{"start of a stopped one", func(cid string) { eng.start(cid) }, []string{"resumed"}, sandbox.StatusRunning, stateRunning},
			{"crash", func(cid string) { eng.die(cid, 2, false) }, []string{"error:container exited with code 2"}, sandbox.StatusPaused, stateExited},
			{"restart", func(cid string) { eng.start(cid) }, []string{"resumed"}, sandbox.StatusRunning, stateRunning},
			{"oom", func(cid string) { eng.die(cid, 137, true) }, []string{"oom", "error:lack of memory"}, sandbox.StatusPaused, stateExited},
			{"clean exit", func(cid string) { eng.start(cid); eng.die(cid, 0, false) }, []string{"resumed", "stopped:exit code 0"}, sandbox.StatusPaused, stateExited},
			{"rename", func(cid string) { eng.emit(cid, "rename", nil) }, nil, sandbox.StatusPaused, stateExited},
			{"start again", func(cid string) { eng.start(cid) }, []string{"resumed"}, sandbox.StatusRunning, stateRunning},
			{"rm -f", func(cid string) { eng.remove(cid) }, []string{"removed"}, "GONE", ""},
		}

		cid := eng.create("s1", nil)
		synctest.Wait()
		if evs := h.drain(); !slices.Equal(summary(evs), []string{"created:s1"}) {
			t.Fatalf("after create: %v", summary(evs))
		} else if evs[0].Sandbox == nil || evs[0].Sandbox.Status != sandbox.StatusStarting || evs[0].Owner != "alice" {
			t.Fatalf("created event: %+v", evs[0])
		}
		if sb, _ := h.m.Get("s1"); sb.Key != "key-s1" {
			t.Errorf("a sandbox seen by its create event has key %q", sb.Key)
		}
		for _, st := range steps {
			st.do(cid)
			synctest.Wait()
			evs := h.drain()
			var got []string
			for _, e := range evs {
				got = append(got, e.Type)
				if e.ID != "s1" || e.Time.IsZero() {
					t.Errorf("%s: event %+v", st.name, e)
				}
			}
			if len(evs) != len(st.wantEvents) {
				t.Errorf("%s: events %v, want %v", st.name, got, st.wantEvents)
				continue
			}
			for i, w := range st.wantEvents {
				typ, reason, _ := strings.Cut(w, ":")
				if evs[i].Type != typ || !strings.Contains(evs[i].Reason, reason) {
					t.Errorf("%s: event %d = %s %q, want %s %q", st.name, i, evs[i].Type, evs[i].Reason, typ, reason)
				}
			}
			if s := h.status("s1"); s != st.wantStatus {
				t.Errorf("%s: status %s, want %s", st.name, s, st.wantStatus)
			}
			if sb, ok := h.m.Get("s1"); ok && sb.State != st.wantState {
				t.Errorf("%s: state %s, want %s", st.name, sb.State, st.wantState)
			}
		}
		// The OOM step left OOMKilled visible on the record until the next start.
	})
}

func TestOOMKilledVisible(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		h := start(t, eng, Options{})
		defer h.stop()
		cid := eng.create("s1", nil)
		eng.start(cid)
		eng.die(cid, 137, true)
		synctest.Wait()
		sb, _ := h.m.Get("s1")
		if !sb.OOMKilled || sb.ExitCode != 137 {
			t.Errorf("after an OOM kill: oom %v exit %d", sb.OOMKilled, sb.ExitCode)
		}
		eng.start(cid)
		synctest.Wait()
		if sb, _ := h.m.Get("s1"); sb.OOMKilled || sb.ExitCode != 0 {
			t.Errorf("after a new start: oom %v exit %d", sb.OOMKilled, sb.ExitCode)
		}
	})
}

// After the event stream breaks, the monitor replays the events the engine
// still has from the last one it applied, re-lists for what the engine no
// longer has, and follows a new stream: what happened meanwhile is in the
// view and published once, with its meaning (a stop is a stop).
func TestReconnectLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		cidA := eng.add("a", stateRunning, time.Now().Add(-time.Hour), nil)
		cidC := eng.add("c", stateRunning, time.Now().Add(-time.Hour), nil)
		cidE := eng.add("e", stateRunning, time.Now().Add(-time.Hour), nil)
		cidF := eng.add("f", stateRunning, time.Now().Add(-time.Hour), nil)
		h := start(t, eng, Options{})
		defer h.stop()
		time.Sleep(time.Second) // the last event is later than the first sync
		cidD := eng.create("d", nil)
		eng.start(cidD)
		synctest.Wait()
		h.drain()
		eng.mu.Lock()
		lastSeen := eng.log[len(eng.log)-1].TimeNano
		eng.mu.Unlock()

		time.Sleep(time.Second)
		eng.breakStreams(errors.New("unexpected EOF"))
		synctest.Wait() // the monitor waits out its back-off
		// While no stream is open: these events reach no one now.
		eng.pause(cidA)
		cidB := eng.create("b", nil)
		eng.start(cidB)
		eng.remove(cidC)
		eng.stop(cidE, 143) // SIGTERM's exit code: a stop, not a crash
		// And this one the engine forgets (as a restarted engine does):
		// only the list can tell.
		eng.pause(cidF)
		eng.mu.Lock()
		eng.log = eng.log[:len(eng.log)-1]
		eng.mu.Unlock()
		listsBefore, _ := eng.counts()

		time.Sleep(maxBackoff) // past the back-off
		synctest.Wait()
		lists, _ := eng.counts()
		if lists != listsBefore+1 {
			t.Errorf("%d lists after the reconnect, want 1", lists-listsBefore)
		}
		eng.mu.Lock()
		sinces, untils := slices.Clone(eng.sinces), slices.Clone(eng.untils)
		eng.mu.Unlock()
		if len(sinces) != 3 || untils[1] == "" || untils[2] != "" {
			t.Fatalf("streams opened: since %v until %v; want live, replay, live", sinces, untils)
		}
		if parseStamp(sinces[1]) != lastSeen {
			t.Errorf("replay since %s, want the last event's time %d", sinces[1], lastSeen)
		}
		if sinces[2] != untils[1] {
			t.Errorf("live stream since %s, want the replay's until %s", sinces[2], untils[1])
		}
		want := map[string]sandbox.Status{"a": sandbox.StatusPaused, "b": sandbox.StatusRunning, "c": "GONE", "d": sandbox.StatusRunning, "e": sandbox.StatusPaused, "f": sandbox.StatusPaused}
		for id, st := range want {
			if got := h.status(id); got != st {
				t.Errorf("%s: %s, want %s", id, got, st)
			}
		}
		var got []string
		for _, e := range h.drain() {
			got = append(got, e.Type+":"+e.ID)
		}
		if w := []string{"paused:a", "created:b", "removed:c", "stopped:e", "paused:f"}; !slices.Equal(got, w) {
			t.Errorf("events after the reconnect %v, want %v (in order, each once)", got, w)
		}

		// The new stream works.
		eng.unpause(cidA)
		synctest.Wait()
		if got := summary(h.drain()); !slices.Equal(got, []string{"resumed:a"}) {
			t.Errorf("after reconnect: %v", got)
		}
	})
}

// The first list fails until the engine answers: Synced waits, Run retries.
func TestFirstSyncRetries(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		eng.add("a", stateRunning, time.Now(), nil)
		eng.listErr = errors.New("connection refused")
		m, err := New(Options{Engine: eng, Runtime: &fakeRuntime{eng: eng}, Records: records(), HealthInterval: -1, ReconcileInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- m.Run(ctx) }()
		time.Sleep(2 * time.Second)
		select {
		case <-m.Synced():
			t.Fatal("synced while the engine fails")
		default:
		}
		eng.mu.Lock()
		eng.listErr = nil
		eng.mu.Unlock()
		time.Sleep(maxBackoff)
		select {
		case <-m.Synced():
		default:
			t.Fatal("not synced after the engine came back")
		}
		if _, ok := m.Get("a"); !ok {
			t.Error("view lacks the sandbox")
		}
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		if err := m.Run(context.Background()); err == nil {
			t.Error("a second Run did not fail")
		}
	})
}

func TestTouchAndPublishFillFromView(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		eng.add("a", stateRunning, time.Now(), berthLabels("a", "carol"))
		h := start(t, eng, Options{})
		defer h.stop()
		h.m.Publish(Event{Type: EventReady, ID: "a"})
		h.m.Publish(Event{Type: EventReady, ID: "unknown", Owner: "x"})
		evs := h.drain()
		if len(evs) != 2 {
			t.Fatalf("events %v", summary(evs))
		}
		if e := evs[0]; e.Owner != "carol" || e.Sandbox == nil || e.Sandbox.ID != "a" || e.Time.IsZero() {
			t.Errorf("ready about a sandbox of the view: %+v", e)
		}
		if e := evs[1]; e.Owner != "x" || e.Sandbox != nil {
			t.Errorf("ready about an unknown one: %+v", e)
		}

		// Ready with the runtime's record updates how the agent is reached;
		// a record of another container does not.
		sb, _ := h.m.Get("a")
		other := sb
		other.ContainerID, other.AgentURL = "other", "unix:///other.sock"
		h.m.Publish(Event{Type: EventReady, ID: "a", Sandbox: &other})
		if got, _ := h.m.Get("a"); got.AgentURL != sb.AgentURL {
			t.Errorf("a record of another container changed the view: %q", got.AgentURL)
		}
		ready := sb
		ready.AgentURL, ready.URLs = "unix:///run/a.sock", map[string]string{"agent": "unix:///run/a.sock"}
		h.m.Publish(Event{Type: EventReady, ID: "a", Sandbox: &ready})
		if got, _ := h.m.Get("a"); got.AgentURL != "unix:///run/a.sock" || got.URLs["agent"] != "unix:///run/a.sock" {
			t.Errorf("after ready: agent %q urls %v", got.AgentURL, got.URLs)
		}
	})
}

// A ready event with the create's record shows the sandbox RUNNING at once,
// before Docker's start event reaches the view, and the start event then
// publishes nothing more.
func TestReadyBeforeStartEvent(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		h := start(t, eng, Options{})
		defer h.stop()
		cid := eng.create("s1", nil)
		synctest.Wait()
		h.drain()
		rec, ok := h.m.Get("s1")
		if !ok || rec.State != "created" {
			t.Fatalf("before ready: %+v %v", rec.State, ok)
		}
		rec.State, rec.Status, rec.AgentURL = stateRunning, sandbox.StatusRunning, "http://127.0.0.1:1"
		h.m.Publish(Event{Type: EventReady, ID: "s1", Sandbox: &rec})
		if got, _ := h.m.Get("s1"); got.Status != sandbox.StatusRunning {
			t.Errorf("after ready: %s, want RUNNING", got.Status)
		}
		eng.start(cid)
		synctest.Wait()
		if evs := summary(h.drain()); !slices.Equal(evs, []string{"ready:s1"}) {
			t.Errorf("events: %v, want only the ready", evs)
		}
	})
}
