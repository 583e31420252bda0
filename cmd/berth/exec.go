package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Exit codes of `berth exec` besides the command's own, as `docker exec`
// and `timeout(1)` use them.
const (
	exitExecFailed = 125 // berth could not run the command
	exitTimedOut   = 124 // --timeout expired; the command was killed
)

func (a *app) execCmd() *cobra.Command {
	var (
		timeout time.Duration
		cwd     string
		env     []string
		session string
		detach  bool
	)
	cmd := &cobra.Command{
		Use:   "exec [--timeout D] [--cwd DIR] [-e K=V]... ID -- CMD [ARG...]",
		Short: "Run a command in a sandbox, streaming its output; exits with its exit code",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			fail := func(err error) error { return codeError{exitExecFailed, err} }
			if cmd.ArgsLenAtDash() != 1 {
				return fail(errors.New("usage: berth exec [flags] ID -- CMD [ARG...]"))
			}
			if timeout < 0 {
				return fail(fmt.Errorf("invalid --timeout %s: must not be negative", timeout))
			}
			req := agentapi.ExecRequest{Argv: args[1:], Cwd: cwd, TimeoutMS: timeout.Milliseconds(), Env: map[string]string{}}
			if err := parseKV(env, "-e", req.Env); err != nil {
				return fail(err)
			}
			if session != "" && detach {
				return fail(errors.New("--session and -d do not go together: a session runs one command at a time in the foreground"))
			}
			sb, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return fail(err)
			}
			switch {
			case session != "":
				return a.execInSession(cmd, sb, agent, session, req)
			case detach:
				return a.execDetached(cmd, sb, agent, req)
			}
			exit, err := agent.Exec(cmd.Context(), req, func(ev agentapi.ExecEvent) error {
				var werr error
				switch ev.Type {
				case agentapi.EventStdout:
					_, werr = a.stdout.Write(ev.Data)
				case agentapi.EventStderr:
					_, werr = a.stderr.Write(ev.Data)
				}
				return werr
			})
			if err != nil {
				return fail(fmt.Errorf("exec in sandbox %s: %w", sb.ID, err))
			}
			if exit.DroppedBytes > 0 {
				fmt.Fprintf(a.stderr, "berth: output truncated: %d bytes dropped\n", exit.DroppedBytes)
			}
			if exit.TimedOut {
				fmt.Fprintf(a.stderr, "berth: command timed out after %s and was killed\n", timeout)
				return exitError{exitTimedOut}
			}
			if exit.ExitCode != 0 {
				return exitError{exit.ExitCode}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.DurationVar(&timeout, "timeout", 0, "kill the command after this long and exit 124 (0 = no limit); with --session the command is left running")
	f.StringVar(&cwd, "cwd", "", "working directory (absolute, or relative to /workspace)")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	f.StringVar(&session, "session", "", "run in the named persistent shell session (cwd, env and functions persist)")
	f.BoolVarP(&detach, "detach", "d", false, "run in the background; prints the process id (see berth ps, output, kill)")
	return cmd
}

// agentFor finds a running sandbox and returns a client of its agent.
func (a *app) agentFor(ctx context.Context, ref string) (sandbox.Sandbox, *agentapi.Client, error) {
	rt, err := a.sandboxes(ctx)
	if err != nil {
		return sandbox.Sandbox{}, nil, err
	}
	sb, err := rt.Get(ctx, ref)
	if err != nil {
		return sandbox.Sandbox{}, nil, err
	}
	if sb.Status != sandbox.StatusRunning {
		return sb, nil, fmt.Errorf("%w: sandbox %s is %s (%s); `berth resume %s` first", sandbox.ErrNotRunning, sb.ID, sb.Status, sb.State, sb.ID)
	}
	if a.remote != nil {
		// Through the server's proxy: its token, not the sandbox's key.
		return sb, a.remote.Agent(sb.ID), nil
	}
	return sb, agentapi.New(sb.AgentURL, sb.Key, a.rt.HTTPClient()), nil
}
