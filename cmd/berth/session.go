package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Exit codes of `berth exec --session` and `berth session input|output`
// besides the command's own:
//
//	124  the command is still running at --timeout (it is not killed; see the
//	     message on stderr for how to go on)
//	125  berth could not run the command
//	130  berth was interrupted (Ctrl-C) and the command did not end within
//	     2 s of the Ctrl-C passed on to it
//
// When the command ends the shell (exit), berth exits with the shell's code
// and says so on stderr; the next command starts a new shell.

// interruptWait is how long berth streams on after passing a Ctrl-C on.
const interruptWait = 2 * time.Second

// execInSession runs req's argv in the named persistent shell session:
// one argument is taken as a shell line as it is, several are quoted and
// joined into one. req.Cwd and req.Env apply when this call starts the
// session's shell.
func (a *app) execInSession(cmd *cobra.Command, sb sandbox.Sandbox, agent *agentapi.Client, session string, req agentapi.ExecRequest) error {
	line := req.Argv[0]
	if len(req.Argv) > 1 {
		line = agentapi.ShellJoin(req.Argv)
	}
	sreq := agentapi.SessionExecRequest{Command: line, TimeoutMS: req.TimeoutMS}
	if req.Cwd != "" || len(req.Env) > 0 {
		sreq.Create = &agentapi.SessionOptions{Cwd: req.Cwd, Env: req.Env}
	}
	ctx := cmd.Context()
	var start agentapi.SessionEvent
	final, err := agent.SessionExec(ctx, session, sreq, a.printSession(&start))
	if err != nil && ctx.Err() != nil {
		return a.interruptSession(ctx, sb, agent, session)
	}
	if err != nil {
		return a.sessionCallFailed(sb, session, err)
	}
	if sreq.Create != nil && !start.NewSession {
		fmt.Fprintf(a.stderr, "berth: --cwd and -e were not used: session %s was already running\n", session)
	}
	return a.sessionResult(sb, session, final, time.Duration(req.TimeoutMS)*time.Millisecond)
}

// printSession writes a session stream's output as it comes, and keeps its
// start event in start.
func (a *app) printSession(start *agentapi.SessionEvent) func(agentapi.SessionEvent) error {
	return func(ev agentapi.SessionEvent) error {
		var err error
		switch ev.Type {
		case agentapi.EventStart:
			*start = ev
		case agentapi.EventStdout:
			_, err = a.stdout.Write(ev.Data)
		case agentapi.EventStderr:
			_, err = a.stderr.Write(ev.Data)
		}
		return err
	}
}

// interruptSession passes berth's own Ctrl-C on to the session's command,
// as a terminal would, and streams what follows for a short while.
func (a *app) interruptSession(ctx context.Context, sb sandbox.Sandbox, agent *agentapi.Client, session string) error {
	ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), interruptWait+5*time.Second)
	defer cancel()
	var start agentapi.SessionEvent
	final, err := agent.SessionInput(ictx, session,
		agentapi.SessionInputRequest{Control: agentapi.ControlInterrupt, TimeoutMS: interruptWait.Milliseconds()},
		a.printSession(&start))
	if err != nil {
		fmt.Fprintf(a.stderr, "berth: interrupted; could not pass Ctrl-C on to session %s: %v\n", session, err)
		return exitError{130}
	}
	if final.Running {
		fmt.Fprintf(a.stderr, "berth: interrupted; the command in session %s goes on after Ctrl-C\n%s", session, continueHelp(sb, session))
		return exitError{130}
	}
	return a.sessionResult(sb, session, final, 0)
}

// sessionResult reports a session call's final event and returns the exit
// code berth exits with.
func (a *app) sessionResult(sb sandbox.Sandbox, session string, final agentapi.SessionEvent, timeout time.Duration) error {
	if final.DroppedBytes > 0 {
		fmt.Fprintf(a.stderr, "berth: output truncated: %d bytes dropped\n", final.DroppedBytes)
	}
	switch {
	case final.Running:
		why := "after " + timeout.String()
		if final.NoOutputTimeout {
			why = "and printed nothing for the no-output timeout"
		}
		fmt.Fprintf(a.stderr, "berth: the command is still running in session %s %s; it was not killed.\n%s", session, why, continueHelp(sb, session))
		return exitError{exitTimedOut}
	case final.ShellExited:
		how := "with code " + strconv.Itoa(final.ExitCode)
		if final.Signal != "" {
			how = "killed by " + final.Signal
		}
		fmt.Fprintf(a.stderr, "berth: the shell of session %s exited %s; the next command starts a new one\n", session, how)
	}
	if final.ExitCode != 0 {
		return exitError{final.ExitCode}
	}
	return nil
}

func continueHelp(sb sandbox.Sandbox, session string) string {
	return fmt.Sprintf("  more output:  berth session output %[1]s %[2]s\n"+
		"  answer it:    berth session input %[1]s %[2]s TEXT\n"+
		"  interrupt it: berth session input --control C-c %[1]s %[2]s\n", sb.ID, session)
}

// sessionCmds is `berth session`: ls, create, rm, output, input.
func (a *app) sessionCmds() []*cobra.Command {
	root := &cobra.Command{
		Use:   "session",
		Short: "Persistent shell sessions of a sandbox (run commands in one with berth exec --session NAME)",
	}
	root.AddCommand(a.sessionLsCmd(), a.sessionCreateCmd(), a.sessionRmCmd(), a.sessionOutputCmd(), a.sessionInputCmd())
	return []*cobra.Command{root}
}

func (a *app) sessionLsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "ls ID [-o json]",
		Aliases: []string{"list"},
		Short:   "List a sandbox's shell sessions",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			list, err := agent.Sessions(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(a.stdout, list)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tPID\tSTATE\tCWD\tCOMMAND\tCREATED")
			for _, s := range list {
				state, command := "idle", ""
				switch {
				case !s.Alive:
					state = "exited " + strconv.Itoa(s.ExitCode)
				case s.Command != nil && s.Command.Running:
					state = "running " + time.Since(s.Command.Started).Round(time.Second).String()
				}
				if s.Command != nil {
					command = strconv.Quote(s.Command.Command)
				}
				fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\t%s\n", s.Name, s.PID, state, dash(s.Cwd), dash(command), ago(time.Since(s.Created)))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func (a *app) sessionCreateCmd() *cobra.Command {
	var (
		opts agentapi.SessionOptions
		env  []string
	)
	cmd := &cobra.Command{
		Use:   "create ID NAME [--shell SHELL] [--cwd DIR] [-e K=V]...",
		Short: "Start a named shell session (berth exec --session also starts one)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Env = map[string]string{}
			if err := parseKV(env, "-e", opts.Env); err != nil {
				return err
			}
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			info, err := agent.CreateSession(cmd.Context(), agentapi.SessionCreateRequest{Name: args[1], SessionOptions: opts})
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, info.Name)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Shell, "shell", "", "shell program (default bash when the image has it, else sh)")
	f.StringVar(&opts.Cwd, "cwd", "", "where the shell starts (absolute, or relative to /workspace)")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	return cmd
}

func (a *app) sessionRmCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "rm ID NAME...",
		Short: "Kill shell sessions and every process they started",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			var errs []error
			for _, name := range args[1:] {
				if err := agent.DeleteSession(cmd.Context(), name); err != nil {
					errs = append(errs, err)
					continue
				}
				fmt.Fprintln(a.stdout, name)
			}
			return errors.Join(errs...)
		},
	}
}

func (a *app) sessionOutputCmd() *cobra.Command {
	var timeout, quiet time.Duration
	cmd := &cobra.Command{
		Use:   "output ID NAME [--timeout D] [--no-output-timeout D]",
		Short: "Stream more output of a session's running command; exits with its code once it ends",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sessionStreamCmd(cmd, args[0], args[1], timeout, func(ctx context.Context, agent *agentapi.Client, on func(agentapi.SessionEvent) error) (agentapi.SessionEvent, error) {
				return agent.SessionOutput(ctx, args[1], agentapi.SessionOutputRequest{
					TimeoutMS: timeout.Milliseconds(), NoOutputTimeoutMS: quiet.Milliseconds(),
				}, on)
			})
		},
	}
	cmd.Flags().DurationVar(&timeout, "timeout", 0, "stop waiting after this long and exit 124; the command goes on (0 = wait for its end)")
	cmd.Flags().DurationVar(&quiet, "no-output-timeout", 0, "stop waiting once it prints nothing for this long, and exit 124")
	return cmd
}

func (a *app) sessionInputCmd() *cobra.Command {
	var (
		timeout, quiet time.Duration
		control        string
		noNewline      bool
	)
	cmd := &cobra.Command{
		Use:   "input ID NAME [TEXT] [--control C-c|C-d|C-z] [--no-newline]",
		Short: "Type TEXT (and Enter) or a control key on a session's running command, then stream its output",
		Args:  cobra.RangeArgs(2, 3),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := agentapi.SessionInputRequest{Control: control, NoNewline: noNewline,
				TimeoutMS: timeout.Milliseconds(), NoOutputTimeoutMS: quiet.Milliseconds()}
			if len(args) == 3 {
				req.Text = args[2]
			}
			return a.sessionStreamCmd(cmd, args[0], args[1], timeout, func(ctx context.Context, agent *agentapi.Client, on func(agentapi.SessionEvent) error) (agentapi.SessionEvent, error) {
				return agent.SessionInput(ctx, args[1], req, on)
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&control, "control", "", "send a control key after the text: C-c (interrupt), C-d (end of input), C-z (suspend)")
	f.BoolVar(&noNewline, "no-newline", false, "do not press Enter after the text")
	f.DurationVar(&timeout, "timeout", 0, "stop waiting after this long and exit 124; the command goes on (0 = wait for its end)")
	f.DurationVar(&quiet, "no-output-timeout", 0, "stop waiting once it prints nothing for this long, and exit 124")
	return cmd
}

// sessionStreamCmd runs one streaming session call for berth session
// output|input and exits as berth exec --session does.
func (a *app) sessionStreamCmd(cmd *cobra.Command, ref, session string, timeout time.Duration,
	call func(context.Context, *agentapi.Client, func(agentapi.SessionEvent) error) (agentapi.SessionEvent, error)) error {
	ctx := cmd.Context()
	sb, agent, err := a.agentFor(ctx, ref)
	if err != nil {
		return codeError{exitExecFailed, err}
	}
	var start agentapi.SessionEvent
	final, err := call(ctx, agent, a.printSession(&start))
	if err != nil && ctx.Err() != nil {
		return a.interruptSession(ctx, sb, agent, session)
	}
	if err != nil {
		return a.sessionCallFailed(sb, session, err)
	}
	return a.sessionResult(sb, session, final, timeout)
}

// sessionCallFailed reports a session call that did not run; when the
// session is busy it says how to go on with berth's own commands.
func (a *app) sessionCallFailed(sb sandbox.Sandbox, session string, err error) error {
	var ae *agentapi.APIError
	if errors.As(err, &ae) && ae.Err.Code == agentapi.CodeBusy {
		fmt.Fprintf(a.stderr, "berth: session %s is busy: %s\n%s", session, ae.Err.Message, continueHelp(sb, session))
		return exitError{exitExecFailed}
	}
	return codeError{exitExecFailed, fmt.Errorf("session %s of sandbox %s: %w", session, sb.ID, err)}
}
