package main

import (
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// execDetached starts req as a background process and prints its id.
func (a *app) execDetached(cmd *cobra.Command, sb sandbox.Sandbox, agent *agentapi.Client, req agentapi.ExecRequest) error {
	if req.TimeoutMS > 0 {
		return codeError{exitExecFailed, errors.New("--timeout does not apply to -d: stop a background process with berth kill")}
	}
	info, err := agent.StartProcess(cmd.Context(), agentapi.ProcessRequest{
		Argv: req.Argv, Command: req.Command, Cwd: req.Cwd, Env: req.Env,
	})
	if err != nil {
		return codeError{exitExecFailed, fmt.Errorf("start in sandbox %s: %w", sb.ID, err)}
	}
	fmt.Fprintln(a.stdout, info.ID)
	return nil
}

// processCmds are berth ps, output and kill.
func (a *app) processCmds() []*cobra.Command {
	return []*cobra.Command{a.psCmd(), a.outputCmd(), a.killCmd()}
}

func (a *app) psCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "ps ID [-o json]",
		Short: "List a sandbox's background processes (running, and recently exited)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			list, err := agent.Processes(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(a.stdout, list)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tNAME\tPID\tSTATE\tEXIT\tSTARTED\tOUTPUT\tCOMMAND")
			for _, p := range list {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%s\t%d\t%s\n", p.ID, dash(p.Name), p.PID, p.State, processExit(p),
					ago(time.Since(p.Started)), p.OutputBytes, processCommand(p, 60))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

// processExit shows how a process ended: "-" while it runs, the code, or
// the code and the signal.
func processExit(p agentapi.ProcessInfo) string {
	switch {
	case p.Running():
		return "-"
	case p.Signal != "":
		return fmt.Sprintf("%d (%s)", p.ExitCode, p.Signal)
	}
	return fmt.Sprint(p.ExitCode)
}

// processCommand shows what a process runs, cut to width.
func processCommand(p agentapi.ProcessInfo, width int) string {
	s := p.Command
	if len(p.Argv) > 0 {
		s = strings.Join(p.Argv, " ")
	}
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > width {
		s = string(r[:width-1]) + "…"
	}
	return s
}

func (a *app) outputCmd() *cobra.Command {
	var (
		follow bool
		offset int64
	)
	cmd := &cobra.Command{
		Use:   "output ID PROC [--follow] [--offset N]",
		Short: "Print a background process's output (stdout to stdout, stderr to stderr)",
		Long: `Print the output a background process wrote, as the sandbox keeps it (the last
1 MiB by default). PROC is the process's id or name.

With --follow, keep printing until the process exits, then exit with its
exit code (128+n when signal n killed it). Without --follow, print what is
there and exit 0.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if offset < 0 {
				return fmt.Errorf("invalid --offset %d: must not be negative", offset)
			}
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			out, err := agent.ProcessOutput(cmd.Context(), args[1], offset, follow, func(ev agentapi.OutputEvent) error {
				var werr error
				switch ev.Type {
				case agentapi.OutputStdout:
					_, werr = a.stdout.Write(ev.Data)
				case agentapi.OutputStderr:
					_, werr = a.stderr.Write(ev.Data)
				case agentapi.OutputDropped:
					fmt.Fprintf(a.stderr, "berth: %d bytes of earlier output are no longer kept\n", ev.DroppedBytes)
				}
				return werr
			})
			if err != nil {
				return err
			}
			if follow && out.Process.ExitCode != 0 {
				return exitError{out.Process.ExitCode}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until the process exits, then exit with its exit code")
	cmd.Flags().Int64Var(&offset, "offset", 0, "start at this byte offset of the output (stdout and stderr counted together)")
	return cmd
}

func (a *app) killCmd() *cobra.Command {
	var (
		signal string
		remove bool
	)
	cmd := &cobra.Command{
		Use:   "kill ID PROC [--signal S] [--rm]",
		Short: "Signal a background process's whole process group (SIGTERM by default)",
		Long: `Send a signal to a background process's process group. PROC is the process's
id or name; S is a name (TERM, SIGKILL) or a number (9).

With --rm, also forget the process and its output (SIGKILL if it still runs).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			ref := args[1]
			if !remove || cmd.Flags().Changed("signal") {
				if _, err := agent.SignalProcess(cmd.Context(), ref, signal); err != nil {
					// With --rm, a process that exited already is fine.
					var ae *agentapi.APIError
					if !remove || !errors.As(err, &ae) || ae.Err.Code != agentapi.CodeConflict {
						return err
					}
				}
			}
			if remove {
				if _, err := agent.RemoveProcess(cmd.Context(), ref); err != nil {
					return err
				}
			}
			fmt.Fprintln(a.stdout, ref)
			return nil
		},
	}
	cmd.Flags().StringVarP(&signal, "signal", "s", "TERM", "signal name or number")
	cmd.Flags().BoolVar(&remove, "rm", false, "then forget the process and its output (SIGKILL if it still runs)")
	return cmd
}
