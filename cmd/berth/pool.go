package main

import (
	"context"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/pool"
	"github.com/berth-dev/berth/internal/sandbox"
)

// poolCmds are `berth pool ls|fill|drain`: the warm pools of [pool] in
// berth.toml, which berth serve keeps filled.
func (a *app) poolCmds() []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Warm pools of ready sandboxes ([pool] in berth.toml; berth serve keeps them filled)",
		Long: `Warm pools keep sandboxes of configured shapes created, started and ready.
A create whose spec has the shape of a pool claims one of its sandboxes (its
name, owner, labels, env and security policy are applied at claim time)
instead of starting one: tens of milliseconds instead of hundreds. berth serve fills the pools and
refills them after each claim; berth create claims a pooled sandbox when one
of its shape exists. Pooled sandboxes are not listed until claimed.`,
	}
	cmd.AddCommand(a.poolLsCmd(), a.poolFillCmd(), a.poolDrainCmd())
	return []*cobra.Command{cmd}
}

func (a *app) poolLsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "ls [-o json]",
		Aliases: []string{"list"},
		Short:   "List the pools: shape, size, ready sandboxes (as the engine has them)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			m, err := a.poolManager(cmd.Context())
			if err != nil {
				return err
			}
			stats, err := m.Census(cmd.Context())
			if err != nil {
				return err
			}
			return a.writePoolStats(output, stats)
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func (a *app) poolFillCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "fill [-o json]",
		Short: "Fill every configured pool to its size, in the foreground",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			m, err := a.poolManager(cmd.Context())
			if err != nil {
				return err
			}
			if len(m.Keys()) == 0 {
				return fmt.Errorf("no pools: add [[pool.shapes]] to the config file")
			}
			fillErr := m.Fill(cmd.Context())
			stats, err := m.Census(cmd.Context())
			if err != nil {
				return err
			}
			if err := a.writePoolStats(output, stats); err != nil {
				return err
			}
			return fillErr
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func (a *app) poolDrainCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "drain [SHAPE]",
		Short: "Remove the pooled sandboxes not yet claimed (of one shape, or all); claimed ones are left alone",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := a.poolManager(cmd.Context())
			if err != nil {
				return err
			}
			key := ""
			if len(args) == 1 {
				key = args[0]
			}
			n, err := m.Drain(cmd.Context(), key)
			fmt.Fprintf(a.stdout, "%d pooled sandboxes removed\n", n)
			return err
		},
	}
}

func (a *app) writePoolStats(output string, stats []pool.ShapeStats) error {
	if output == "json" {
		if stats == nil {
			stats = []pool.ShapeStats{}
		}
		return writeJSON(a.stdout, stats)
	}
	tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SHAPE\tIMAGE\tNETWORK\tMEMORY\tCPUS\tSIZE\tREADY\tLAST ERROR")
	for _, st := range stats {
		mem, cpus := "-", "-"
		if st.Memory > 0 {
			mem = fmt.Sprintf("%dMiB", st.Memory>>20)
		}
		if st.NanoCPUs > 0 {
			cpus = fmt.Sprintf("%g", float64(st.NanoCPUs)/1e9)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%s\n", st.Key, st.Image, dash(st.Network), mem, cpus, st.Size, st.Ready, dash(st.LastError))
	}
	return tw.Flush()
}

// poolShapes are the configured pools: each [[pool.shapes]] entry laid over
// the [sandbox] settings, as a create request is.
func (a *app) poolShapes() ([]pool.Shape, error) {
	var shapes []pool.Shape
	for _, s := range a.cfg.Pool.Shapes {
		spec, err := a.specFromConfig()
		if err != nil {
			return nil, err
		}
		s.Apply(&spec)
		spec.Debug = false
		shapes = append(shapes, pool.Shape{Spec: spec, Size: s.Size})
	}
	return shapes, nil
}

// poolManager is the manager of the configured pools over the runtime.
// berth serve runs it (Run) and creates through Runtime(); the CLI uses it
// to claim a pooled sandbox that exists, and for `berth pool`.
func (a *app) poolManager(ctx context.Context) (*pool.Manager, error) {
	rt, err := a.runtime(ctx)
	if err != nil {
		return nil, err
	}
	shapes, err := a.poolShapes()
	if err != nil {
		return nil, err
	}
	return pool.New(rt, pool.Options{Shapes: shapes, Concurrency: a.cfg.Pool.Concurrency, Logger: a.log})
}

// createSandbox is berth create's create: it claims a pooled sandbox of
// spec's shape when one exists (berth serve keeps them; looking costs one
// container list), else creates cold.
func (a *app) createSandbox(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	if a.remote != nil { // the server claims from its own pools
		rt, err := a.sandboxes(ctx)
		if err != nil {
			return sandbox.Sandbox{}, err
		}
		return rt.Create(ctx, spec)
	}
	m, err := a.poolManager(ctx)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	sb, warm, err := m.Create(ctx, spec)
	if err == nil {
		a.log.Debug("sandbox created", "id", sb.ID, "warm", warm)
	}
	return sb, err
}
