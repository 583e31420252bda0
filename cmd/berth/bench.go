package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/bench"
	"github.com/berth-dev/berth/internal/pool"
	"github.com/berth-dev/berth/internal/sandbox"
)

// benchAll is what --scenario all runs, in order.
var benchAll = []string{"sequential", "staggered", "burst"}

func (a *app) benchCmd() *cobra.Command {
	var (
		n, burst, poolSize int
		img, output        string
		scenario, network  string
		skipDocker, noPool bool
		interval           time.Duration
		poolConcurrency    int
		scenarioNames      = slices.Sorted(func(yield func(string) bool) {
			for k := range bench.Scenarios {
				if !yield(k) {
					return
				}
			}
		})
	)
	cmd := &cobra.Command{
		Use:   "bench [-n N] [--scenario sequential|staggered|burst|footprint|all] [-o json]",
		Short: "Measure berth (cold and warm creates, exec, pause, resume, files, bursts) against raw Docker in the same run",
		Long: `Measure berth against the raw Docker baseline, on this machine, in the same run.

Scenarios:
  sequential  one operation at a time, N rounds, berth and docker interleaved:
              cold create→ready and →first command, warm claim→ready and →first
              command (from a warm pool of --pool-size, refilled between rounds),
              next to docker run -d + docker exec true; then exec round trip,
              pause, resume, 1 MiB file write and read next to docker exec,
              pause, unpause and docker cp. Also where a create's time goes.
  staggered   N creates arriving every --interval, through the warm pool (which
              runs dry and refills), next to the same arrivals of docker run+exec
  burst       --burst concurrent cold creates, then checks nothing is left
  footprint   N idle sandboxes: agent RSS, sandbox memory, host memory each
  all         sequential, staggered and burst
  create, exec  the earlier single measurements`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if n < 1 {
				return fmt.Errorf("invalid -n %d: at least 1 round", n)
			}
			names := []string{scenario}
			if scenario == "all" {
				names = benchAll
			}
			for _, s := range names {
				if bench.Scenarios[s] == nil {
					return fmt.Errorf("invalid --scenario %q: use %s or all", scenario, strings.Join(scenarioNames, ", "))
				}
			}
			if burst < 1 {
				return fmt.Errorf("invalid --burst %d: at least 1", burst)
			}
			rt, err := a.runtime(cmd.Context())
			if err != nil {
				return err
			}
			spec, err := a.specFromConfig()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("image") {
				spec.Image = sandbox.ImageSpec{Base: img}
			}
			if cmd.Flags().Changed("network") {
				spec.Network, spec.UseHostNetwork = network, network == sandbox.NetworkHost
			}
			if spec.Image.Runtime != "" {
				return fmt.Errorf("bench compares building on a base image with docker run of that image: unset runtime_container_image or pass --image")
			}
			spec.Debug = false
			// Every object of the run carries its run id: the pool touches
			// only its own pooled sandboxes, and leftovers are counted.
			runID := make([]byte, 6)
			_, _ = rand.Read(runID)
			labels := map[string]string{"berth.bench": hex.EncodeToString(runID)}
			spec.Labels = labels
			opts := bench.Options{N: n, Spec: spec, Labels: labels, Log: a.stderr, Burst: burst, Interval: interval}
			if !skipDocker {
				if opts.Docker, err = exec.LookPath("docker"); err != nil {
					return fmt.Errorf("the raw Docker baseline needs the docker CLI (%v); pass --no-docker to skip it", err)
				}
			}
			target := bench.Target{
				Runtime: rt,
				Agents:  func(sb sandbox.Sandbox) *agentapi.Client { return rt.Agent(sb) },
			}
			// The warm side: a pool of the bench's spec, kept by a manager
			// running for the length of the run, drained at its end.
			if !noPool && poolSize > 0 && slices.ContainsFunc(names, func(s string) bool { return s == "sequential" || s == "staggered" }) {
				m, err := pool.New(rt, pool.Options{
					Shapes:      []pool.Shape{{Spec: spec, Size: poolSize}},
					Concurrency: poolConcurrency,
					Labels:      labels,
					Logger:      a.log,
				})
				if err != nil {
					return err
				}
				pctx, stop := context.WithCancel(cmd.Context())
				done := make(chan error, 1)
				go func() { done <- m.Run(pctx) }()
				defer func() {
					stop()
					<-done
					if _, err := m.Drain(context.WithoutCancel(cmd.Context()), ""); err != nil {
						a.log.Warn("draining the bench's pool", "err", err)
					}
				}()
				target.Pool = m
			}
			var reps []bench.Report
			for _, s := range names {
				rep, err := bench.Scenarios[s](cmd.Context(), target, opts)
				if err != nil {
					return fmt.Errorf("bench %s: %w", s, err)
				}
				reps = append(reps, rep)
			}
			rep := reps[0]
			if len(reps) > 1 {
				rep = bench.Merge(reps...)
			}
			if output == "json" {
				err = rep.WriteJSON(a.stdout)
			} else {
				err = rep.WriteTable(a.stdout)
			}
			return errors.Join(err, leftoverError(rep))
		},
	}
	f := cmd.Flags()
	f.IntVarP(&n, "rounds", "n", 20, "rounds per side (sandboxes, for footprint)")
	f.StringVar(&img, "image", "", "base image (default: sandbox.base_container_image)")
	f.StringVar(&scenario, "scenario", "sequential", "what to measure: sequential, staggered, burst, footprint, all (or create, exec)")
	f.BoolVar(&skipDocker, "no-docker", false, "skip the raw Docker baseline")
	f.StringVar(&network, "network", "", "network of berth's sandboxes: bridge, none, internal or host")
	f.IntVar(&burst, "burst", 50, "concurrent creates of the burst scenario")
	f.DurationVar(&interval, "interval", 250*time.Millisecond, "time between arrivals of the staggered scenario")
	f.IntVar(&poolSize, "pool-size", 2, "warm pool of the bench's spec (sequential, staggered); 0 = no warm side")
	f.IntVar(&poolConcurrency, "pool-concurrency", pool.DefaultConcurrency, "pooled sandboxes created at once by the refill")
	f.BoolVar(&noPool, "no-pool", false, "no warm side")
	f.StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

// leftoverError fails the run if a scenario left sandboxes or containers.
func leftoverError(rep bench.Report) error {
	var errs []error
	for _, c := range rep.Counts {
		if c.Name == "leftovers" && c.Value > 0 {
			errs = append(errs, fmt.Errorf("bench %s: %g %s objects left behind", c.Scenario, c.Value, c.Side))
		}
	}
	if f := rep.Footprint; f != nil && f.Leftovers > 0 {
		errs = append(errs, fmt.Errorf("bench footprint: %d sandboxes left behind", f.Leftovers))
	}
	return errors.Join(errs...)
}
