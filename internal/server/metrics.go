package server

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the server's Prometheus metrics.
type metrics struct {
	requests *prometheus.HistogramVec // route, method, code
	create   prometheus.Histogram
	exec     prometheus.Histogram
	pause    prometheus.Histogram
	resume   prometheus.Histogram
	errors   *prometheus.CounterVec // kind (the error code)
}

// newRegistry is a registry with the Go runtime and process collectors.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// actionBuckets cover sandbox actions: tens of ms (pause) to minutes
// (a create that builds an image).
var actionBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	h := func(name, help string) prometheus.Histogram {
		return prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: actionBuckets})
	}
	m := &metrics{
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "berth_request_duration_seconds",
			Help:    "Duration of API requests (streams included), by route pattern, method and status code.",
			Buckets: prometheus.DefBuckets,
		}, []string{"route", "method", "code"}),
		create: h("berth_create_seconds", "Duration of successful sandbox creates, readiness included."),
		exec:   h("berth_exec_seconds", "Duration of execs through the API, from request to exit event."),
		pause:  h("berth_pause_seconds", "Duration of successful pauses."),
		resume: h("berth_resume_seconds", "Duration of successful resumes, until the agent answers."),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "berth_errors_total",
			Help: "API error answers, by kind (the error code).",
		}, []string{"kind"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.create, m.exec, m.pause, m.resume, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("server: register metrics: %w", err)
		}
	}
	return m, nil
}
