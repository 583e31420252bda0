package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	berthclient "github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/pool"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/server"
)

// poolCmds are `berth pool ls|fill|drain|resize`: the warm pools of [pool]
// in berth.toml, which berth serve keeps filled. ls reads a server's pools
// with --host; resize works only through a server; fill and drain only
// here, on the engine.
func (a *app) poolCmds() []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "pool",
		Short: "Warm pools of ready sandboxes ([pool] in berth.toml; berth serve keeps them filled)",
		Long: `Warm pools keep sandboxes of configured shapes created, started and ready.
A create whose spec has the shape of a pool claims one of its sandboxes (its
name, owner, labels, env and security policy are applied at claim time)
instead of starting one: tens of milliseconds instead of hundreds. berth serve fills the pools and
refills them after each claim; berth create claims a pooled sandbox when one
of its shape exists. Pooled sandboxes are not listed until claimed.

With --host (or BERTH_HOST), ls shows the pools of that berth server, and
resize (which works only through a server, by default the [server] addr of
berth.toml) sets the size of one of them until the server restarts; fill and
drain act on the local engine only.`,
	}
	cmd.AddCommand(a.poolLsCmd(), a.poolFillCmd(), a.poolDrainCmd(), a.poolResizeCmd())
	return []*cobra.Command{cmd}
}

func (a *app) poolLsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "ls [-o json]",
		Aliases: []string{"list"},
		Short:   "List the pools: shape, size, ready sandboxes (as the engine has them; with --host, as that server keeps them)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if a.remote != nil {
				list, err := a.remote.Pools(cmd.Context())
				if err != nil {
					return fmt.Errorf("pool ls: %w", err)
				}
				stats := make([]pool.ShapeStats, len(list))
				for i, st := range list {
					stats[i] = pool.ShapeStats(st)
				}
				return a.writePoolStats(output, stats)
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
		Short: "Fill every configured pool to its size, in the foreground (on the local engine)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if err := a.poolLocalOnly("fill", "a server fills its pools itself"); err != nil {
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
		Short: "Remove the pooled sandboxes not yet claimed (of one shape, or all; on the local engine); claimed ones are left alone",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := a.poolLocalOnly("drain", "to empty a server's pool, use berth pool resize SHAPE 0"); err != nil {
				return err
			}
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

func (a *app) poolResizeCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "resize SHAPE N [-o json]",
		Short: "Set the size of a pool of berth serve (admin tenants only; lasts until the server restarts)",
		Long: "Set the size of the pool with shape key SHAPE (see berth pool ls --host) to N sandboxes, 0 to " +
			strconv.Itoa(berthclient.MaxPoolSize) + ".\n" +
			"It works only through a running berth serve, which keeps the pools: the server of --host / BERTH_HOST,\n" +
			"else the [server] addr of berth.toml, else " + server.DefaultAddr + "; BERTH_TOKEN must be an admin tenant's.\n" +
			"The server then creates the missing sandboxes, or removes the extra ready ones, in the background.\n" +
			"berth.toml is not changed: a restarted server keeps the configured size again.",
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 2 {
				return fmt.Errorf("usage: berth pool resize SHAPE N (got %d arguments)", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			key := args[0]
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 0 || n > berthclient.MaxPoolSize {
				return fmt.Errorf("invalid size %q: want a number of sandboxes, 0 to %d", args[1], berthclient.MaxPoolSize)
			}
			c, err := a.serverClient()
			if err != nil {
				return err
			}
			st, err := c.ResizePool(cmd.Context(), key, n)
			switch {
			case errors.Is(err, sandbox.ErrUnavailable):
				return fmt.Errorf("pool resize %s: no berth server answers at %s (%w): resize works only through a running berth serve; "+
					"name it with --host or BERTH_HOST", key, c.BaseURL(), err)
			case err != nil:
				return fmt.Errorf("pool resize %s: %w", key, err)
			}
			if output == "json" {
				return writeJSON(a.stdout, st)
			}
			return a.writePoolStats("", []pool.ShapeStats{pool.ShapeStats(st)})
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

// poolLocalOnly refuses a pool command that acts on the local engine when
// --host / BERTH_HOST names a server.
func (a *app) poolLocalOnly(verb, instead string) error {
	if a.remote == nil {
		return nil
	}
	return fmt.Errorf("berth pool %s runs here, on the local Docker engine, not through a berth server "+
		"(--host / BERTH_HOST is %s): %s; to %s locally, pass --host \"\"", verb, a.remote.BaseURL(), instead, verb)
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
