package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/sandbox"
)

func (a *app) createCmd() *cobra.Command {
	var (
		img, name, output string
		env, labels       []string
		timeout           time.Duration
	)
	cmd := &cobra.Command{
		Use:   "create [--image BASE] [--name NAME] [-e K=V]... [--label K=V]... [-o json]",
		Short: "Create a sandbox and wait until it is ready; prints its id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			s := a.cfg.Sandbox
			spec := sandbox.Spec{
				Name:           name,
				Env:            maps.Clone(s.RuntimeStartupEnvVars),
				BindAddress:    s.RuntimeBindingAddress,
				UseHostNetwork: s.UseHostNetwork,
				UserID:         s.UserID,
				Timeout:        s.Timeout.Duration,
				Debug:          a.debug,
				Image: sandbox.ImageSpec{
					Base:         s.BaseContainerImage,
					Runtime:      s.RuntimeContainerImage,
					ExtraDeps:    s.RuntimeExtraDeps,
					ForceRebuild: s.ForceRebuildRuntime,
				},
			}
			if cmd.Flags().Changed("image") {
				spec.Image.Base, spec.Image.Runtime = img, ""
			}
			if cmd.Flags().Changed("timeout") {
				spec.Timeout = timeout
			}
			var err error
			if spec.Image.BuildArgs, err = s.BuildArgs(); err != nil {
				return err
			}
			if spec.Env == nil {
				spec.Env = map[string]string{}
			}
			if err := parseKV(env, "-e", spec.Env); err != nil {
				return err
			}
			spec.Labels = map[string]string{}
			if err := parseKV(labels, "--label", spec.Labels); err != nil {
				return err
			}
			rt, err := a.runtime(cmd.Context())
			if err != nil {
				return err
			}
			sb, err := rt.Create(cmd.Context(), spec)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(a.stdout, sb)
			}
			fmt.Fprintln(a.stdout, sb.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&img, "image", "", "base image (default: sandbox.base_container_image)")
	f.StringVar(&name, "name", "", "a unique name to refer to the sandbox by")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE of the sandbox's processes (repeatable)")
	f.StringArrayVar(&labels, "label", nil, "label KEY=VALUE (repeatable)")
	f.DurationVar(&timeout, "timeout", 0, "how long to wait for the sandbox to be ready (default: sandbox.timeout)")
	f.StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func (a *app) lsCmd() *cobra.Command {
	var all bool
	var output string
	cmd := &cobra.Command{
		Use:     "ls [-a] [-o json]",
		Aliases: []string{"list", "ps"},
		Short:   "List sandboxes (running ones; -a for all)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			rt, err := a.runtime(cmd.Context())
			if err != nil {
				return err
			}
			list, err := rt.List(cmd.Context(), sandbox.ListOptions{All: all})
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(a.stdout, list)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tSTATUS\tSTATE\tIMAGE\tCREATED\tAGENT")
			for _, sb := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", sb.ID, dash(sb.Name), sb.Status, sb.State, sb.Image,
					ago(time.Since(sb.CreatedAt)), dash(sb.AgentURL))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "include sandboxes that are not running")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func (a *app) inspectCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "inspect ID [-o json]",
		Short: "Show a sandbox's record: status, raw Docker state, exit code, ports, URLs, labels",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			rt, err := a.runtime(cmd.Context())
			if err != nil {
				return err
			}
			sb, err := rt.Get(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(a.stdout, sb)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			row := func(k string, v any) { fmt.Fprintf(tw, "%s:\t%v\n", k, v) }
			row("id", sb.ID)
			row("name", dash(sb.Name))
			row("status", sb.Status)
			row("state", sb.State)
			row("exit_code", sb.ExitCode)
			row("oom_killed", sb.OOMKilled)
			if sb.Error != "" {
				row("error", sb.Error)
			}
			row("image", sb.Image)
			row("runtime_image", sb.RuntimeImage)
			row("created_at", sb.CreatedAt.Format(time.RFC3339))
			for _, p := range sb.Ports {
				row("port "+p.Name, fmt.Sprintf("%s:%d -> %d", p.HostIP, p.HostPort, p.Container))
			}
			for _, k := range slices.Sorted(maps.Keys(sb.URLs)) {
				row("url "+k, sb.URLs[k])
			}
			for _, k := range slices.Sorted(maps.Keys(sb.Labels)) {
				row("label "+k, sb.Labels[k])
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

// stateCmd makes pause, resume and stop: one sandbox, one call, print its id.
func (a *app) stateCmd(use, short string, op func(a *app, cmd *cobra.Command, ref string) (sandbox.Sandbox, error)) *cobra.Command {
	return &cobra.Command{
		Use:   use + " ID",
		Short: short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			sb, err := op(a, cmd, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, sb.ID)
			return nil
		},
	}
}

func (a *app) pauseCmd() *cobra.Command {
	return a.stateCmd("pause", "Freeze a sandbox's processes (memory kept; resume is fast)",
		func(a *app, cmd *cobra.Command, ref string) (sandbox.Sandbox, error) {
			rt, err := a.runtime(cmd.Context())
			if err != nil {
				return sandbox.Sandbox{}, err
			}
			return rt.Pause(cmd.Context(), ref)
		})
}

func (a *app) resumeCmd() *cobra.Command {
	return a.stateCmd("resume", "Thaw a paused sandbox or start a stopped one; returns when its agent answers",
		func(a *app, cmd *cobra.Command, ref string) (sandbox.Sandbox, error) {
			rt, err := a.runtime(cmd.Context())
			if err != nil {
				return sandbox.Sandbox{}, err
			}
			return rt.Resume(cmd.Context(), ref)
		})
}

func (a *app) stopCmd() *cobra.Command {
	return a.stateCmd("stop", "Stop a sandbox's container (memory freed, files kept)",
		func(a *app, cmd *cobra.Command, ref string) (sandbox.Sandbox, error) {
			rt, err := a.runtime(cmd.Context())
			if err != nil {
				return sandbox.Sandbox{}, err
			}
			return rt.Stop(cmd.Context(), ref)
		})
}

func (a *app) rmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm [-f] ID...",
		Short: "Remove sandboxes and everything berth made for them",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rt, err := a.runtime(cmd.Context())
			if err != nil {
				return err
			}
			var errs []error
			for _, ref := range args {
				// Resolve first, so a typo is reported rather than silently
				// "removed"; -f accepts references that are already gone.
				if _, err := rt.Get(cmd.Context(), ref); err != nil {
					if force && errors.Is(err, sandbox.ErrNotFound) {
						continue
					}
					errs = append(errs, err)
					continue
				}
				if err := rt.Remove(cmd.Context(), ref); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(a.stdout, ref)
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "do not complain about sandboxes that do not exist")
	return cmd
}

func (a *app) logsCmd() *cobra.Command {
	var follow bool
	var tail string
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] ID",
		Short: "Print a sandbox's container logs",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if tail != "all" {
				var n int
				if _, err := fmt.Sscanf(tail, "%d", &n); err != nil || n < 0 || fmt.Sprint(n) != tail {
					return fmt.Errorf("invalid --tail %q: expected a number of lines or \"all\"", tail)
				}
			}
			rt, err := a.runtime(cmd.Context())
			if err != nil {
				return err
			}
			rc, err := rt.Logs(cmd.Context(), args[0], sandbox.LogOptions{Follow: follow, Tail: tail})
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(a.stdout, rc)
			if cmd.Context().Err() != nil {
				return nil // interrupted while following
			}
			return err
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new lines")
	cmd.Flags().StringVar(&tail, "tail", "all", "number of lines from the end")
	return cmd
}

func parseKV(items []string, flag string, into map[string]string) error {
	for _, it := range items {
		k, v, ok := strings.Cut(it, "=")
		if !ok || k == "" {
			return fmt.Errorf("invalid %s %q: expected KEY=VALUE", flag, it)
		}
		into[k] = v
	}
	return nil
}

func checkOutput(o string) error {
	if o != "" && o != "json" {
		return fmt.Errorf("invalid --output %q: the only format is json", o)
	}
	return nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func ago(d time.Duration) string {
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	default:
		return fmt.Sprintf("%dd ago", int(d.Hours()/24))
	}
}
