package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berth-dev/berth/internal/agentapi"
)

// shellCmds is berth shell.
func (a *app) shellCmds() []*cobra.Command { return []*cobra.Command{a.shellCmd()} }

func (a *app) shellCmd() *cobra.Command {
	var (
		cwd string
		env []string
	)
	cmd := &cobra.Command{
		Use:   "shell ID [--cwd DIR] [-e K=V]... [-- CMD [ARG...]]",
		Short: "Open an interactive terminal in a sandbox; exits with the shell's exit code",
		Long: `Open a terminal in the sandbox running the sandbox user's shell (or CMD) in
the workdir, with TERM=xterm-256color. When stdin is a terminal it is put in
raw mode (restored on exit) and window size changes follow.

When stdin is not a terminal, its bytes are typed into the remote terminal
and its end sends one Ctrl-D. berth exits with the shell's exit code, or 125
when it cannot open the terminal.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			fail := func(err error) error { return codeError{exitExecFailed, err} }
			if at := cmd.ArgsLenAtDash(); (at == -1 && len(args) != 1) || (at != -1 && at != 1) {
				return fail(errors.New("usage: berth shell [flags] ID [-- CMD [ARG...]]"))
			}
			opts := agentapi.PTYOptions{Cwd: cwd, Env: map[string]string{}}
			if err := parseKV(env, "-e", opts.Env); err != nil {
				return fail(err)
			}
			if len(args) > 1 {
				opts.Cmd = shellJoin(args[1:])
			}
			sb, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return fail(err)
			}
			code, err := a.runShell(cmd.Context(), agent, opts, cmd.InOrStdin())
			if err != nil {
				return fail(fmt.Errorf("shell in sandbox %s: %w", sb.ID, err))
			}
			if code != 0 {
				return exitError{code}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&cwd, "cwd", "", "working directory (absolute, or relative to /workspace)")
	f.StringArrayVarP(&env, "env", "e", nil, "environment variable KEY=VALUE (repeatable)")
	return cmd
}

// runShell connects the local terminal (or in and a.stdout) to a terminal
// in the sandbox until its shell exits, and returns the shell's exit code.
// The local terminal is restored however it returns.
func (a *app) runShell(ctx context.Context, agent *agentapi.Client, opts agentapi.PTYOptions, in io.Reader) (int, error) {
	inFile, _ := in.(*os.File)
	tty := inFile != nil && term.IsTerminal(int(inFile.Fd()))
	sizeFd := -1
	if f, ok := a.stdout.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		sizeFd = int(f.Fd())
	} else if tty {
		sizeFd = int(inFile.Fd())
	}
	if sizeFd >= 0 {
		if w, h, err := term.GetSize(sizeFd); err == nil && w > 0 && h > 0 {
			opts.Cols, opts.Rows = w, h
		}
	}

	conn, err := agent.DialPTY(ctx, opts)
	if err != nil {
		return 0, err
	}
	defer conn.Close()

	if tty {
		fd := int(inFile.Fd())
		state, err := term.MakeRaw(fd)
		if err != nil {
			return 0, fmt.Errorf("set the terminal to raw mode: %w", err)
		}
		defer func() { _ = term.Restore(fd, state) }()
	}

	done := make(chan struct{})
	defer close(done)
	if sizeFd >= 0 {
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		go func() {
			for {
				select {
				case <-winch:
					if w, h, err := term.GetSize(sizeFd); err == nil && w > 0 && h > 0 {
						_ = conn.Resize(ctx, w, h)
					}
				case <-done:
					return
				}
			}
		}()
	}

	// Input: this goroutine may stay blocked reading stdin after the shell
	// exits; berth exits then anyway.
	go func() {
		if _, err := io.Copy(conn, in); err == nil && !tty {
			_, _ = conn.Write([]byte{4}) // end of input: Ctrl-D
		}
	}()
	copied := make(chan error, 1)
	go func() {
		_, err := io.Copy(a.stdout, conn)
		copied <- err
	}()
	select {
	case err := <-copied:
		if err != nil {
			return 0, err
		}
	case <-ctx.Done():
		conn.Close()
		<-copied
		return 0, ctx.Err()
	}
	code, ok := conn.ExitCode()
	if !ok {
		return 0, errors.New("the terminal closed without the shell's exit code")
	}
	return code, nil
}

// shellJoin quotes args for a POSIX shell, so the remote shell runs them as
// the same argv (as docker exec would).
func shellJoin(args []string) string {
	quoted := make([]string, len(args))
	for i, s := range args {
		quoted[i] = shellQuote(s)
	}
	return strings.Join(quoted, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./=:@%+,", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
