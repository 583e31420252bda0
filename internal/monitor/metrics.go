package monitor

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the monitor's Prometheus metrics. They exist whether or not
// a Registerer was given.
type metrics struct {
	sandboxes    *sandboxesCollector    // berth_sandboxes{status,owner}
	events       *prometheus.CounterVec // berth_events_total{type}
	checks       *prometheus.CounterVec // berth_health_checks_total{result}
	actions      *prometheus.CounterVec // berth_policy_actions_total{policy,action}
	dropped      prometheus.Counter     // berth_event_subscribers_dropped_total
	streamErrors prometheus.Counter     // berth_docker_event_stream_errors_total
}

func newMetrics(m *Monitor) *metrics {
	return &metrics{
		sandboxes: &sandboxesCollector{m: m, desc: prometheus.NewDesc(
			"berth_sandboxes", "Sandboxes in the view, by status and owner.", []string{"status", "owner"}, nil)},
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_events_total", Help: "Sandbox events published, by type.",
		}, []string{"type"}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_health_checks_total", Help: "Agent health checks, by result (ok, failed, failed_in_grace).",
		}, []string{"result"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_policy_actions_total", Help: "Actions of the lifecycle policies and the reconciler, by policy and action.",
		}, []string{"policy", "action"}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_event_subscribers_dropped_total", Help: "Event subscribers dropped because they fell behind.",
		}),
		streamErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "berth_docker_event_stream_errors_total", Help: "Times the Docker event stream broke and was reopened.",
		}),
	}
}

// register registers every metric, or none.
func (x *metrics) register(r prometheus.Registerer) error {
	var done []prometheus.Collector
	for _, c := range []prometheus.Collector{x.sandboxes, x.events, x.checks, x.actions, x.dropped, x.streamErrors} {
		if err := r.Register(c); err != nil {
			for _, d := range done {
				r.Unregister(d)
			}
			return err
		}
		done = append(done, c)
	}
	return nil
}

// sandboxesCollector counts the view's sandboxes when scraped, so the
// gauge can never drift from the view.
type sandboxesCollector struct {
	m    *Monitor
	desc *prometheus.Desc
}

func (c *sandboxesCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *sandboxesCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct{ status, owner string }
	counts := map[key]int{}
	c.m.mu.Lock()
	for _, e := range c.m.byID {
		counts[key{string(e.sb.Status), e.sb.Owner}]++
	}
	c.m.mu.Unlock()
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), k.status, k.owner)
	}
}
