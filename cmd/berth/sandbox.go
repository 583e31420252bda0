package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/sandbox"
)

// createFlags are create's flags beyond the config file.
type createFlags struct {
	image, name, output, network, memory, gpus string
	securityPolicy                             string
	env, labels, volumes, tmpfs, publish, join []string
	timeout                                    time.Duration
	cpus                                       float64
	pidsLimit, appPorts                        int
	vscode, readOnly                           bool
}

func (a *app) createCmd() *cobra.Command {
	var fl createFlags
	cmd := &cobra.Command{
		Use:   "create [--image BASE] [--name NAME] [-e K=V]... [--label K=V]... [-o json]",
		Short: "Create a sandbox and wait until it is ready; prints its id",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(fl.output); err != nil {
				return err
			}
			// A server applies its own configuration: send only the flags.
			spec := sandbox.Spec{Env: map[string]string{}, Labels: map[string]string{}}
			if a.remote == nil {
				var err error
				if spec, err = a.specFromConfig(); err != nil {
					return err
				}
			}
			if err := fl.apply(cmd, &spec); err != nil {
				return err
			}
			sb, err := a.createSandbox(cmd.Context(), spec)
			if err != nil {
				return err
			}
			if fl.output == "json" {
				return writeJSON(a.stdout, sb)
			}
			fmt.Fprintln(a.stdout, sb.ID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&fl.image, "image", "", "base image (default: sandbox.base_container_image)")
	f.StringVar(&fl.name, "name", "", "a unique name to refer to the sandbox by")
	f.StringArrayVarP(&fl.env, "env", "e", nil, "environment variable KEY=VALUE of the sandbox's processes (repeatable)")
	f.StringArrayVar(&fl.labels, "label", nil, "label KEY=VALUE (repeatable)")
	f.DurationVar(&fl.timeout, "timeout", 0, "how long to wait for the sandbox to be ready (default: sandbox.timeout)")
	f.StringVar(&fl.network, "network", "", "bridge, none, internal or host (default: sandbox.network, else bridge)")
	f.StringArrayVar(&fl.join, "network-add", nil, "also join this existing Docker network (repeatable)")
	f.StringArrayVarP(&fl.volumes, "volume", "v", nil, "mount host:container[:rw|ro|overlay]; a relative host is a named volume (repeatable)")
	f.StringArrayVar(&fl.tmpfs, "tmpfs", nil, "mount a tmpfs: PATH[:size=64m] (repeatable)")
	f.StringArrayVarP(&fl.publish, "publish", "p", nil, "publish this container port on a host port from the app range (repeatable)")
	f.BoolVar(&fl.vscode, "vscode", false, "publish a VS Code port (VSCODE_PORT in the sandbox)")
	f.IntVar(&fl.appPorts, "app-ports", 0, "publish 0, 1 or 2 app ports (APP_PORT_1, APP_PORT_2 in the sandbox)")
	f.StringVarP(&fl.memory, "memory", "m", "", "memory limit, e.g. 512m or 2g")
	f.Float64Var(&fl.cpus, "cpus", 0, "CPU limit, e.g. 1.5")
	f.IntVar(&fl.pidsLimit, "pids-limit", 0, "process limit (default 4096; -1 = none)")
	f.StringVar(&fl.gpus, "gpus", "", `GPUs: "all" or device numbers "0,1"`)
	f.BoolVar(&fl.readOnly, "read-only", false, "read-only root filesystem (/workspace, /tmp and /home stay writable)")
	f.StringVar(&fl.securityPolicy, "security-policy", "",
		"the sandbox's own security policy under berth serve: off, audit, confirm or deny; it can only tighten the tenant's")
	f.StringVarP(&fl.output, "output", "o", "", "output format: json")
	return cmd
}

// specFromConfig is the spec the configuration describes, before flags.
func (a *app) specFromConfig() (sandbox.Spec, error) {
	s := a.cfg.Sandbox
	limits, err := s.Limits()
	if err != nil {
		return sandbox.Spec{}, err
	}
	buildArgs, err := s.BuildArgs()
	if err != nil {
		return sandbox.Spec{}, err
	}
	spec := sandbox.Spec{
		Env:            maps.Clone(s.RuntimeStartupEnvVars),
		Labels:         map[string]string{},
		BindAddress:    s.RuntimeBindingAddress,
		UseHostNetwork: s.UseHostNetwork,
		Network:        s.Network,
		Networks:       s.AdditionalNetworks,
		UserID:         s.UserID,
		Timeout:        s.Timeout.Duration,
		Debug:          a.debug,
		VSCode:         s.PublishVSCode,
		VSCodePort:     s.VSCodePort,
		AppPorts:       s.PublishAppPorts,
		Tmpfs:          s.Tmpfs,
		Limits:         limits,
		GPUs:           sandbox.GPUs{Enabled: s.EnableGPU},
		ReadOnlyRootfs: s.ReadOnlyRootfs,
		Image: sandbox.ImageSpec{
			Base:         s.BaseContainerImage,
			Runtime:      s.RuntimeContainerImage,
			ExtraDeps:    s.RuntimeExtraDeps,
			BuildArgs:    buildArgs,
			ForceRebuild: s.ForceRebuildRuntime,
		},
	}
	if s.Volumes != "" {
		spec.Volumes = strings.Split(s.Volumes, ",")
	}
	if s.CUDAVisibleDevices != "" {
		spec.GPUs.DeviceIDs = strings.Split(s.CUDAVisibleDevices, ",")
	}
	if spec.Env == nil {
		spec.Env = map[string]string{}
	}
	return spec, nil
}

// apply lays the flags the user gave over spec; each bad value is an error
// naming the flag.
func (fl createFlags) apply(cmd *cobra.Command, spec *sandbox.Spec) error {
	changed := cmd.Flags().Changed
	spec.Name = fl.name
	if changed("image") {
		spec.Image.Base, spec.Image.Runtime = fl.image, ""
	}
	if changed("timeout") {
		spec.Timeout = fl.timeout
	}
	if err := parseKV(fl.env, "-e", spec.Env); err != nil {
		return err
	}
	if err := parseKV(fl.labels, "--label", spec.Labels); err != nil {
		return err
	}
	if changed("network") {
		spec.Network, spec.UseHostNetwork = fl.network, fl.network == sandbox.NetworkHost
	}
	spec.Networks = append(spec.Networks, fl.join...)
	spec.Volumes = append(spec.Volumes, fl.volumes...)
	spec.Tmpfs = append(spec.Tmpfs, fl.tmpfs...)
	for _, p := range fl.publish {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("invalid -p %q: expected a container port 1-65535", p)
		}
		spec.Publish = append(spec.Publish, n)
	}
	if changed("vscode") {
		spec.VSCode = fl.vscode
	}
	if changed("app-ports") {
		spec.AppPorts = fl.appPorts
	}
	if changed("memory") {
		n, err := config.ParseSize(fl.memory)
		if err != nil || n < 6<<20 {
			return fmt.Errorf("invalid --memory %q: expected a size of at least 6m, like 512m or 2g", fl.memory)
		}
		spec.Limits.Memory = n
	}
	if changed("cpus") {
		if fl.cpus <= 0 || fl.cpus > 1024 {
			return fmt.Errorf("invalid --cpus %v: expected a positive number of CPUs, like 1.5", fl.cpus)
		}
		spec.Limits.NanoCPUs, spec.Limits.CPUPeriod, spec.Limits.CPUQuota = int64(fl.cpus*1e9), 0, 0
	}
	if changed("pids-limit") {
		if fl.pidsLimit == 0 || fl.pidsLimit < -1 {
			return fmt.Errorf("invalid --pids-limit %d: expected a positive number, or -1 for none", fl.pidsLimit)
		}
		spec.Limits.PidsLimit = int64(fl.pidsLimit)
	}
	if changed("gpus") {
		switch g := strings.TrimSpace(fl.gpus); {
		case g == "all":
			spec.GPUs = sandbox.GPUs{Enabled: true}
		case g != "":
			spec.GPUs = sandbox.GPUs{Enabled: true, DeviceIDs: strings.Split(g, ",")}
		default:
			return fmt.Errorf(`invalid --gpus %q: expected "all" or device numbers like "0,1"`, fl.gpus)
		}
	}
	if changed("read-only") {
		spec.ReadOnlyRootfs = fl.readOnly
	}
	if changed("security-policy") {
		if !sandbox.ValidPolicy(fl.securityPolicy) {
			return fmt.Errorf("invalid --security-policy %q: expected off, audit, confirm or deny", fl.securityPolicy)
		}
		spec.SecurityPolicy = fl.securityPolicy
	}
	return nil
}

func (a *app) lsCmd() *cobra.Command {
	var all bool
	var output string
	cmd := &cobra.Command{
		Use:     "ls [-a] [-o json]",
		Aliases: []string{"list"},
		Short:   "List sandboxes (running ones; -a for all)",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			rt, err := a.sandboxes(cmd.Context())
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
					ago(time.Since(sb.CreatedAt)), dash(sb.URLs["agent"]))
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
			rt, err := a.sandboxes(cmd.Context())
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
			if sb.SecurityPolicy != "" {
				row("security_policy", sb.SecurityPolicy)
			}
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
			rt, err := a.sandboxes(cmd.Context())
			if err != nil {
				return sandbox.Sandbox{}, err
			}
			return rt.Pause(cmd.Context(), ref)
		})
}

func (a *app) resumeCmd() *cobra.Command {
	return a.stateCmd("resume", "Thaw a paused sandbox or start a stopped one; returns when its agent answers",
		func(a *app, cmd *cobra.Command, ref string) (sandbox.Sandbox, error) {
			rt, err := a.sandboxes(cmd.Context())
			if err != nil {
				return sandbox.Sandbox{}, err
			}
			return rt.Resume(cmd.Context(), ref)
		})
}

func (a *app) stopCmd() *cobra.Command {
	return a.stateCmd("stop", "Stop a sandbox's container (memory freed, files kept)",
		func(a *app, cmd *cobra.Command, ref string) (sandbox.Sandbox, error) {
			rt, err := a.sandboxes(cmd.Context())
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
			rt, err := a.sandboxes(cmd.Context())
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
			rt, err := a.sandboxes(cmd.Context())
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
