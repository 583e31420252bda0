// Package bench measures berth against raw Docker on the same machine in the
// same run, and reports percentiles and ratios.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os/exec"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Metric is the summary of one measured operation.
type Metric struct {
	Name    string  `json:"name"`
	Side    string  `json:"side"` // "berth" or "docker"
	N       int     `json:"n"`
	OK      int     `json:"ok"`
	P50MS   float64 `json:"p50_ms"`
	P95MS   float64 `json:"p95_ms"`
	P99MS   float64 `json:"p99_ms"`
	MeanMS  float64 `json:"mean_ms"`
	Success float64 `json:"success_rate"`
	Command string  `json:"command,omitempty"` // what the docker side ran
}

// Ratio compares a berth metric with its raw Docker baseline (p50 over p50):
// below 1 means berth is faster.
type Ratio struct {
	Berth  string  `json:"berth"`
	Docker string  `json:"docker"`
	P50    float64 `json:"p50_ratio"`
}

// Report is one bench run.
type Report struct {
	Started time.Time `json:"started"`
	Image   string    `json:"image"`
	N       int       `json:"n"`
	Metrics []Metric  `json:"metrics"`
	Ratios  []Ratio   `json:"ratios"`
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
	ms := func(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }
	rank := func(p float64) time.Duration { return s[max(0, int(math.Ceil(p*float64(len(s))))-1)] }
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	m.P50MS, m.P95MS, m.P99MS = ms(rank(0.50)), ms(rank(0.95)), ms(rank(0.99))
	m.MeanMS = ms(sum / time.Duration(len(s)))
	return m
}

// Options of a run.
type Options struct {
	N      int
	Spec   sandbox.Spec // what berth creates; Image.Base is also the docker side's image
	Docker string       // docker CLI for the baseline ("" = skip it)
	Labels map[string]string
	Log    io.Writer // progress lines; nil = none
}

// Runtime is what the bench drives on the berth side.
type Runtime interface {
	Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error)
	Remove(ctx context.Context, ref string) error
}

// Agents makes an agent client for a sandbox.
type Agents func(sb sandbox.Sandbox) *agentapi.Client

// Create measures, N times each and interleaved so that machine noise hits
// both sides alike: berth create→ready, berth create→first command, and the
// raw Docker equivalent `docker run -d IMAGE sleep` + `docker exec ID true`.
// Every sandbox and container is removed right after it is measured.
func Create(ctx context.Context, rt Runtime, agents Agents, opts Options) (Report, error) {
	rep := Report{Started: time.Now().UTC(), Image: opts.Spec.Image.Base, N: opts.N}
	var ready, first, raw []time.Duration
	var readyFail, firstFail, rawFail int
	logf := func(format string, args ...any) {
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, format+"\n", args...)
		}
	}
	// One warm-up of each side: the first create may build the runtime image.
	if sb, err := rt.Create(ctx, opts.Spec); err != nil {
		return rep, fmt.Errorf("bench warm-up: %w", err)
	} else if err := rt.Remove(ctx, sb.ID); err != nil {
		return rep, err
	}
	dockerRef := ""
	if opts.Docker != "" {
		dockerRef = opts.Spec.Image.Base
		if _, err := dockerRun(ctx, opts.Docker, dockerRef, opts.Labels); err != nil {
			return rep, fmt.Errorf("bench warm-up (docker): %w", err)
		}
	}
	for i := range opts.N {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		// berth: create→ready, and create→first command.
		t0 := time.Now()
		sb, err := rt.Create(ctx, opts.Spec)
		d := time.Since(t0)
		if err != nil {
			readyFail++
			firstFail++
			logf("berth create %d: %v", i, err)
		} else {
			ready = append(ready, d)
			_, _, exit, err := agents(sb).ExecOutput(ctx, agentapi.ExecRequest{Argv: []string{"true"}})
			if err != nil || exit.ExitCode != 0 {
				firstFail++
				logf("berth first command %d: %v (exit %d)", i, err, exit.ExitCode)
			} else {
				first = append(first, time.Since(t0))
			}
			if err := rt.Remove(ctx, sb.ID); err != nil {
				return rep, err
			}
		}
		if dockerRef != "" {
			if d, err := dockerRun(ctx, opts.Docker, dockerRef, opts.Labels); err != nil {
				rawFail++
				logf("docker run+exec %d: %v", i, err)
			} else {
				raw = append(raw, d)
			}
		}
		logf("round %d/%d done", i+1, opts.N)
	}
	rep.Metrics = append(rep.Metrics,
		Summarize("create_to_ready", "berth", ready, readyFail),
		Summarize("create_to_first_command", "berth", first, firstFail))
	if dockerRef != "" {
		m := Summarize("run_to_first_exec", "docker", raw, rawFail)
		m.Command = "docker run -d " + dockerRef + " sleep 3600 && docker exec ID true"
		rep.Metrics = append(rep.Metrics, m)
		for _, b := range rep.Metrics[:2] {
			if m.P50MS > 0 {
				rep.Ratios = append(rep.Ratios, Ratio{Berth: b.Name, Docker: m.Name, P50: math.Round(b.P50MS/m.P50MS*100) / 100})
			}
		}
	}
	return rep, nil
}

// dockerRun times `docker run -d` + `docker exec true` with the docker CLI,
// then removes the container (not timed).
func dockerRun(ctx context.Context, docker, ref string, labels map[string]string) (time.Duration, error) {
	args := []string{"run", "-d"}
	for k, v := range labels {
		args = append(args, "--label", k+"="+v)
	}
	args = append(args, "--entrypoint", "sleep", ref, "3600")
	t0 := time.Now()
	out, err := exec.CommandContext(ctx, docker, args...).Output()
	if err != nil {
		return 0, fmt.Errorf("docker run: %w", cmdErr(err))
	}
	id := strings.TrimSpace(string(out))
	defer exec.Command(docker, "rm", "-f", id).Run()
	if err := exec.CommandContext(ctx, docker, "exec", id, "true").Run(); err != nil {
		return 0, fmt.Errorf("docker exec: %w", cmdErr(err))
	}
	return time.Since(t0), nil
}

func cmdErr(err error) error {
	if ee, ok := err.(*exec.ExitError); ok && len(ee.Stderr) > 0 {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}

// WriteTable prints the report for a person.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "image %s, n=%d\n", r.Image, r.N)
	fmt.Fprintln(tw, "SIDE\tMETRIC\tP50 ms\tP95 ms\tP99 ms\tMEAN ms\tOK")
	for _, m := range r.Metrics {
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.1f\t%.1f\t%d/%d\n", m.Side, m.Name, m.P50MS, m.P95MS, m.P99MS, m.MeanMS, m.OK, m.N)
	}
	for _, x := range r.Ratios {
		fmt.Fprintf(tw, "ratio\t%s / %s (p50)\t%.2f\t\t\t\t\n", x.Berth, x.Docker, x.P50)
	}
	return tw.Flush()
}

// WriteJSON prints the report as JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// Exec measures the exec round trip of `true` through the agent, N times,
// interleaved with `docker exec ID true` on the same sandbox's container.
func Exec(ctx context.Context, rt Runtime, agents Agents, opts Options) (Report, error) {
	rep := Report{Started: time.Now().UTC(), Image: opts.Spec.Image.Base, N: opts.N}
	sb, err := rt.Create(ctx, opts.Spec)
	if err != nil {
		return rep, fmt.Errorf("bench exec: %w", err)
	}
	defer rt.Remove(context.WithoutCancel(ctx), sb.ID)
	agent := agents(sb)
	var viaAgent, viaDocker []time.Duration
	var agentFail, dockerFail int
	for i := range opts.N + 1 { // round 0 warms both paths up
		t0 := time.Now()
		_, _, exit, err := agent.ExecOutput(ctx, agentapi.ExecRequest{Argv: []string{"true"}})
		d := time.Since(t0)
		if i > 0 {
			if err != nil || exit.ExitCode != 0 {
				agentFail++
			} else {
				viaAgent = append(viaAgent, d)
			}
		}
		if opts.Docker != "" {
			t0 = time.Now()
			err := exec.CommandContext(ctx, opts.Docker, "exec", sb.ContainerID, "true").Run()
			d = time.Since(t0)
			if i > 0 {
				if err != nil {
					dockerFail++
				} else {
					viaDocker = append(viaDocker, d)
				}
			}
		}
	}
	rep.Metrics = append(rep.Metrics, Summarize("exec_round_trip", "berth", viaAgent, agentFail))
	if opts.Docker != "" {
		m := Summarize("exec_round_trip", "docker", viaDocker, dockerFail)
		m.Command = "docker exec ID true"
		rep.Metrics = append(rep.Metrics, m)
		if b := rep.Metrics[0]; b.P50MS > 0 {
			rep.Ratios = append(rep.Ratios, Ratio{Berth: "exec_round_trip", Docker: "exec_round_trip", P50: math.Round(b.P50MS/m.P50MS*1000) / 1000})
		}
	}
	return rep, nil
}
