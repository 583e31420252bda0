// Package bench measures berth against raw Docker on the same machine in the
// same run, and reports percentiles and ratios.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/pool"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Sides of a metric.
const (
	SideBerth  = "berth"
	SideDocker = "docker"
)

// Metric is the summary of one measured operation.
type Metric struct {
	Name     string  `json:"name"`
	Side     string  `json:"side"` // "berth" or "docker"
	Scenario string  `json:"scenario,omitempty"`
	N        int     `json:"n"`
	OK       int     `json:"ok"`
	P50MS    float64 `json:"p50_ms"`
	P95MS    float64 `json:"p95_ms"`
	P99MS    float64 `json:"p99_ms"`
	MeanMS   float64 `json:"mean_ms"`
	Success  float64 `json:"success_rate"`
	Command  string  `json:"command,omitempty"` // what the docker side ran
}

// Ratio compares a berth metric with its raw Docker baseline: below 1
// means berth is faster.
type Ratio struct {
	Scenario string  `json:"scenario,omitempty"`
	Berth    string  `json:"berth"`
	Docker   string  `json:"docker"`
	P50      float64 `json:"p50_ratio"`
	P95      float64 `json:"p95_ratio"`
}

// PhaseSummary is where the time of a create (or a claim) goes: one phase,
// over every measured create of a path.
type PhaseSummary struct {
	Path   string  `json:"path"` // "cold" or "warm"
	Name   string  `json:"name"`
	P50MS  float64 `json:"p50_ms"`
	P95MS  float64 `json:"p95_ms"`
	MeanMS float64 `json:"mean_ms"`
}

// Count is a figure that is not a latency: warm claims of a run, sandboxes
// left behind after a burst.
type Count struct {
	Scenario string  `json:"scenario,omitempty"`
	Name     string  `json:"name"`
	Side     string  `json:"side,omitempty"`
	Value    float64 `json:"value"`
}

// Report is one bench run.
type Report struct {
	Started   time.Time      `json:"started"`
	Scenario  string         `json:"scenario"`
	Image     string         `json:"image"`
	N         int            `json:"n"`
	Metrics   []Metric       `json:"metrics"`
	Ratios    []Ratio        `json:"ratios"`
	Phases    []PhaseSummary `json:"phases,omitempty"`
	Counts    []Count        `json:"counts,omitempty"`
	Footprint *Footprint     `json:"footprint,omitempty"`
}

// Summarize turns samples (successful runs only) and a failure count into a
// Metric, with nearest-rank percentiles.
func Summarize(name, side string, samples []time.Duration, failures int) Metric {
	m := Metric{Name: name, Side: side, N: len(samples) + failures, OK: len(samples)}
	if m.N > 0 {
		m.Success = float64(m.OK) / float64(m.N)
	}
	if len(samples) == 0 {
		return m
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	rank := func(p float64) time.Duration { return s[max(0, int(math.Ceil(p*float64(len(s))))-1)] }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	m.P50MS, m.P95MS, m.P99MS = ms(rank(0.50)), ms(rank(0.95)), ms(rank(0.99))
	m.MeanMS = ms(sum / time.Duration(len(s)))
	return m
}

// ms is d in milliseconds, to 0.01 ms.
func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

// Options of a run.
type Options struct {
	N      int
	Spec   sandbox.Spec // what berth creates; Image.Base is also the docker side's image
	Docker string       // docker CLI for the baseline ("" = skip it)
	Labels map[string]string
	Log    io.Writer // progress lines; nil = none

	Burst    int           // concurrent creates of the burst scenario (default 50)
	Interval time.Duration // time between arrivals in the staggered scenario (default 250ms)
}

func (o Options) withDefaults() Options {
	if o.N < 1 {
		o.N = 1
	}
	if o.Burst <= 0 {
		o.Burst = 50
	}
	if o.Interval <= 0 {
		o.Interval = 250 * time.Millisecond
	}
	return o
}

func (o Options) logf(format string, args ...any) {
	if o.Log != nil {
		fmt.Fprintf(o.Log, format+"\n", args...)
	}
}

// Runtime is what the bench drives on the berth side.
type Runtime interface {
	Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error)
	Remove(ctx context.Context, ref string) error
	Pause(ctx context.Context, ref string) (sandbox.Sandbox, error)
	Resume(ctx context.Context, ref string) (sandbox.Sandbox, error)
	List(ctx context.Context, opts sandbox.ListOptions) ([]sandbox.Sandbox, error)
}

// Pool is the warm side: a running pool manager with a pool of the bench's
// spec (*pool.Manager).
type Pool interface {
	Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, bool, error)
	Stats() []pool.ShapeStats
}

// Agents makes an agent client for a sandbox.
type Agents func(sb sandbox.Sandbox) *agentapi.Client

// Target is what a scenario measures: the runtime, its agents, and the
// warm pool (nil: no warm side).
type Target struct {
	Runtime Runtime
	Agents  Agents
	Pool    Pool
}

// Scenario is one kind of run.
type Scenario func(ctx context.Context, t Target, opts Options) (Report, error)

// Scenarios are the runs berth bench knows, by name.
var Scenarios = map[string]Scenario{
	"sequential": Sequential,
	"staggered":  Staggered,
	"burst":      Burst,
	"footprint":  FootprintScenario,
	"create":     Create,
	"exec":       Exec,
}

// Merge puts reports of several scenarios into one.
func Merge(reps ...Report) Report {
	out := Report{Scenario: "", Metrics: []Metric{}, Ratios: []Ratio{}}
	var names []string
	for i, r := range reps {
		if i == 0 {
			out.Started, out.Image, out.N = r.Started, r.Image, r.N
		}
		names = append(names, r.Scenario)
		out.Metrics = append(out.Metrics, r.Metrics...)
		out.Ratios = append(out.Ratios, r.Ratios...)
		out.Phases = append(out.Phases, r.Phases...)
		out.Counts = append(out.Counts, r.Counts...)
		if r.Footprint != nil {
			out.Footprint = r.Footprint
		}
	}
	out.Scenario = strings.Join(names, "+")
	return out
}

func newReport(scenario string, opts Options) Report {
	return Report{Started: time.Now().UTC(), Scenario: scenario, Image: opts.Spec.Image.Base, N: opts.N, Metrics: []Metric{}, Ratios: []Ratio{}}
}

// add summarizes samples into the report.
func (r *Report) add(name, side string, samples []time.Duration, failures int, command string) {
	m := Summarize(name, side, samples, failures)
	m.Scenario, m.Command = r.Scenario, command
	r.Metrics = append(r.Metrics, m)
}

// ratio adds berth's metric over docker's, if both were measured.
func (r *Report) ratio(berth, dockerName string) {
	var b, d *Metric
	for i := range r.Metrics {
		m := &r.Metrics[i]
		if m.Scenario != r.Scenario {
			continue
		}
		switch {
		case m.Side == SideBerth && m.Name == berth:
			b = m
		case m.Side == SideDocker && m.Name == dockerName:
			d = m
		}
	}
	if b == nil || d == nil || b.OK == 0 || d.OK == 0 || d.P50MS == 0 || d.P95MS == 0 {
		return
	}
	round := func(x float64) float64 { return math.Round(x*1000) / 1000 }
	r.Ratios = append(r.Ratios, Ratio{Scenario: r.Scenario, Berth: berth, Docker: dockerName,
		P50: round(b.P50MS / d.P50MS), P95: round(b.P95MS / d.P95MS)})
}

func (r *Report) count(name, side string, v float64) {
	r.Counts = append(r.Counts, Count{Scenario: r.Scenario, Name: name, Side: side, Value: v})
}

// phases summarizes the traces of the creates of one path.
func (r *Report) phases(path string, traces []*docker.Trace) {
	byName := map[string][]time.Duration{}
	var order []string
	for _, t := range traces {
		sums := map[string]time.Duration{}
		for _, p := range t.Phases() {
			if _, seen := byName[p.Name]; !seen {
				order = append(order, p.Name)
				byName[p.Name] = nil
			}
			sums[p.Name] += p.Duration // a retried phase counts whole
		}
		for n, d := range sums {
			byName[n] = append(byName[n], d)
		}
	}
	for _, n := range order {
		m := Summarize(n, "", byName[n], 0)
		r.Phases = append(r.Phases, PhaseSummary{Path: path, Name: n, P50MS: m.P50MS, P95MS: m.P95MS, MeanMS: m.MeanMS})
	}
}

// WriteTable prints the report for a person.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "scenario %s, image %s, n=%d\n", r.Scenario, r.Image, r.N)
	fmt.Fprintln(tw, "SCENARIO\tSIDE\tMETRIC\tP50 ms\tP95 ms\tP99 ms\tMEAN ms\tOK")
	for _, m := range r.Metrics {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.2f\t%.2f\t%.2f\t%.2f\t%d/%d\n", m.Scenario, m.Side, m.Name, m.P50MS, m.P95MS, m.P99MS, m.MeanMS, m.OK, m.N)
	}
	if len(r.Ratios) > 0 {
		fmt.Fprintln(tw, "\nSCENARIO\tRATIO berth / docker\tP50\tP95")
		for _, x := range r.Ratios {
			fmt.Fprintf(tw, "%s\t%s / %s\t%.3f\t%.3f\n", x.Scenario, x.Berth, x.Docker, x.P50, x.P95)
		}
	}
	if len(r.Phases) > 0 {
		fmt.Fprintln(tw, "\nPATH\tPHASE\tP50 ms\tP95 ms\tMEAN ms")
		for _, p := range r.Phases {
			fmt.Fprintf(tw, "%s\t%s\t%.2f\t%.2f\t%.2f\n", p.Path, p.Name, p.P50MS, p.P95MS, p.MeanMS)
		}
	}
	if len(r.Counts) > 0 {
		fmt.Fprintln(tw, "\nSCENARIO\tSIDE\tCOUNT\tVALUE")
		for _, c := range r.Counts {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%g\n", c.Scenario, c.Side, c.Name, c.Value)
		}
	}
	if f := r.Footprint; f != nil {
		fmt.Fprintf(tw, "\nfootprint: %d/%d sandboxes idle; agent RSS MiB p50 %.2f p95 %.2f max %.2f; sandbox memory (cgroup) MiB p50 %.2f max %.2f; host memory per sandbox %.2f MiB\n",
			f.OK, f.N, f.AgentRSSMiB.P50, f.AgentRSSMiB.P95, f.AgentRSSMiB.Max, f.CgroupMiB.P50, f.CgroupMiB.Max, f.HostPerSandboxMiB)
	}
	return tw.Flush()
}

// WriteJSON prints the report as JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
