package monitor

import (
	"context"
	"sort"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func TestSlowSubscriberIsDroppedNotWaitedFor(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		h := start(t, eng, Options{SubscriberBuffer: 2})
		defer h.stop()
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		slow := h.m.Subscribe(ctx)
		fast := h.m.Subscribe(ctx)
		fastGot := make(chan int)
		go func() {
			n := 0
			for range fast {
				n++
			}
			fastGot <- n
		}()
		for range 3 { // the third overflows slow's buffer (and the harness's)
			h.m.Publish(Event{Type: EventReady, ID: "x"})
			synctest.Wait() // the fast reader keeps up
		}
		cancel()
		if n := <-fastGot; n != 3 {
			t.Errorf("fast subscriber got %d events, want 3", n)
		}
		var got int
		for range slow {
			got++
		}
		if got != 2 {
			t.Errorf("slow subscriber read %d events before its channel closed, want 2", got)
		}
		if v := counterValue(t, h.m.met.dropped); v != 2 { // slow and the harness's
			t.Errorf("dropped subscribers counter = %v", v)
		}
	})
}

func TestSubscribeClosesWithContext(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		h := start(t, eng, Options{})
		defer h.stop()
		ctx, cancel := context.WithCancel(context.Background())
		ch := h.m.Subscribe(ctx)
		h.m.Publish(Event{Type: EventReady, ID: "x"})
		cancel()
		synctest.Wait()
		if e, ok := <-ch; !ok || e.Type != EventReady {
			t.Fatalf("buffered event lost: %v %v", e, ok)
		}
		if _, ok := <-ch; ok {
			t.Fatal("channel open after its ctx ended")
		}
		h.m.Publish(Event{Type: EventReady, ID: "x"}) // must not panic on the closed channel

		done, cancel2 := context.WithCancel(context.Background())
		cancel2()
		ch = h.m.Subscribe(done)
		synctest.Wait()
		if _, ok := <-ch; ok {
			t.Fatal("a subscription with an ended ctx stays open")
		}
	})
}

func counterValue(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	var sum float64
	for m := range ch {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		sum += d.GetCounter().GetValue()
	}
	return sum
}

func TestMetrics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		eng := newFakeEngine()
		reg := prometheus.NewRegistry()
		eng.add("a", stateRunning, time.Now().Add(-2*time.Hour), berthLabels("a", "alice"))
		eng.add("b", stateRunning, time.Now().Add(-time.Hour), berthLabels("b", "alice"))
		eng.add("c", statePaused, time.Now(), berthLabels("c", "bob"))
		agents := newFakeAgents()
		h := start(t, eng, Options{Registerer: reg, Policy: Policy{MaxRunning: 1}, Health: agents.check, HealthInterval: time.Second, StartupGrace: -1})
		defer h.stop()
		time.Sleep(1500 * time.Millisecond)
		synctest.Wait()

		got := gather(t, reg)
		for _, want := range []string{
			`berth_sandboxes{owner="alice",status="PAUSED"} 1`,
			`berth_sandboxes{owner="alice",status="RUNNING"} 1`,
			`berth_sandboxes{owner="bob",status="PAUSED"} 1`,
			`berth_events_total{type="paused"} 1`,
			`berth_events_total{type="policy"} 1`,
			`berth_policy_actions_total{action="pause",policy="max_running"} 1`,
			`berth_health_checks_total{result="ok"} 1`,
		} {
			if !strings.Contains(got, want+"\n") {
				t.Errorf("metrics lack %s; have:\n%s", want, got)
			}
		}
		// A second monitor on the same registry is refused.
		if _, err := New(Options{Engine: eng, Runtime: h.rt, Records: records(), Registerer: reg}); err == nil {
			t.Error("registering the metrics twice did not fail")
		}
	})
}

// gather renders the registry's berth metrics as "name{labels} value" lines.
func gather(t *testing.T, reg *prometheus.Registry) string {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			lines = append(lines, mf.GetName()+"{"+strings.Join(labels, ",")+"} "+strconv.FormatFloat(v, 'g', -1, 64))
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n") + "\n"
}
