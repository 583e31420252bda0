package main

import (
	"context"
	"fmt"
	"os/exec"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/bench"
	"github.com/berth-dev/berth/internal/sandbox"
)

func (a *app) benchCmd() *cobra.Command {
	var (
		n           int
		img, output string
		scenario    string
		network     string
		skipDocker  bool
	)
	cmd := &cobra.Command{
		Use:   "bench [-n N] [--image IMG] [-o json]",
		Short: "Measure sandbox create→ready against raw `docker run -d` + `docker exec` in the same run",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if n < 1 {
				return fmt.Errorf("invalid -n %d: at least 1 round", n)
			}
			run, ok := map[string]func(context.Context, bench.Runtime, bench.Agents, bench.Options) (bench.Report, error){
				"create": bench.Create,
				"exec":   bench.Exec,
			}[scenario]
			if !ok {
				return fmt.Errorf("invalid --scenario %q: use create or exec", scenario)
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
			labels := map[string]string{"berth.bench": "1"}
			spec.Labels = labels
			opts := bench.Options{N: n, Spec: spec, Labels: labels, Log: a.stderr}
			if !skipDocker {
				if opts.Docker, err = exec.LookPath("docker"); err != nil {
					return fmt.Errorf("the raw Docker baseline needs the docker CLI (%v); pass --no-docker to skip it", err)
				}
			}
			agents := func(sb sandbox.Sandbox) *agentapi.Client { return agentapi.New(sb.AgentURL, sb.Key, rt.HTTPClient()) }
			rep, err := run(cmd.Context(), rt, agents, opts)
			if err != nil {
				return err
			}
			if output == "json" {
				return rep.WriteJSON(a.stdout)
			}
			return rep.WriteTable(a.stdout)
		},
	}
	f := cmd.Flags()
	f.IntVarP(&n, "rounds", "n", 20, "rounds per side")
	f.StringVar(&img, "image", "", "base image (default: sandbox.base_container_image)")
	f.StringVar(&scenario, "scenario", "create", "what to measure: create (create→ready, first command) or exec (round trip of true)")
	f.BoolVar(&skipDocker, "no-docker", false, "skip the raw Docker baseline")
	f.StringVar(&network, "network", "", "network of berth's sandboxes: bridge, none, internal or host")
	f.StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}
