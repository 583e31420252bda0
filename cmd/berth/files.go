package main

import (
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
)

// fileCmds is berth files: single-file operations in a sandbox, through
// the agent's files API, with the sandbox user's permissions.
func (a *app) fileCmds() []*cobra.Command {
	cmd := &cobra.Command{
		Use:   "files",
		Short: "List, read, write, move and remove files in a sandbox (as the sandbox user)",
		Long: `Work on files in a sandbox through its agent, as the sandbox user: every
access is checked against that user's permissions, and what is created belongs
to it. Paths are absolute, or relative to the sandbox's workdir. For whole
trees, use berth cp.`,
	}
	cmd.AddCommand(a.filesLsCmd(), a.filesCatCmd(), a.filesWriteCmd(), a.filesStatCmd(),
		a.filesMkdirCmd(), a.filesMvCmd(), a.filesRmCmd())
	return []*cobra.Command{cmd}
}

func (a *app) filesLsCmd() *cobra.Command {
	var (
		opts   agentapi.ListOptions
		output string
	)
	cmd := &cobra.Command{
		Use:   "ls [-R] [--glob PATTERN] [--no-hidden] [--limit N] [-o json] ID [PATH]",
		Short: "List a directory (default the workdir); directories first",
		Args:  cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			p := "."
			if len(args) == 2 {
				p = args[1]
			}
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			res, err := agent.List(cmd.Context(), p, opts)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(a.stdout, res)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			for _, e := range res.Entries {
				name := strings.TrimPrefix(strings.TrimPrefix(e.Path, res.Path), "/")
				switch {
				case e.IsDir:
					name += "/"
				case e.IsSymlink:
					name += " -> " + e.LinkTarget
				}
				fmt.Fprintf(tw, "%s\t%d:%d\t%d\t%s\t%s\n", e.Mode, e.UID, e.GID, e.Size, e.ModTime.Local().Format(time.DateTime), name)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, msg := range res.Errors {
				fmt.Fprintln(a.stderr, "berth: cannot read", msg)
			}
			if res.Truncated {
				fmt.Fprintf(a.stderr, "berth: listing truncated at %d entries (--limit)\n", len(res.Entries))
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&opts.Recursive, "recursive", "R", false, "list subdirectories too (breadth first)")
	f.StringVar(&opts.Glob, "glob", "", "only names matching this pattern (paths, if it has a /)")
	f.BoolVar(&opts.NoHidden, "no-hidden", false, "leave out names starting with a dot")
	f.IntVar(&opts.Limit, "limit", 0, fmt.Sprintf("at most this many entries (default %d, max %d)", agentapi.DefaultListLimit, agentapi.MaxListLimit))
	f.StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func (a *app) filesCatCmd() *cobra.Command {
	var (
		opts  agentapi.ReadOptions
		lines string
	)
	cmd := &cobra.Command{
		Use:   "cat [--offset N] [--length N] [--lines A:B] ID PATH",
		Short: "Print a file, or a byte or line range of it",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if lines != "" {
				start, end, err := parseLines(lines)
				if err != nil {
					return err
				}
				opts.StartLine, opts.EndLine = start, end
			}
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			rc, _, err := agent.ReadFile(cmd.Context(), args[1], opts)
			if err != nil {
				return err
			}
			defer rc.Close()
			_, err = io.Copy(a.stdout, rc)
			return err
		},
	}
	f := cmd.Flags()
	f.Int64Var(&opts.Offset, "offset", 0, "first byte (from 0)")
	f.Int64Var(&opts.Length, "length", 0, "bytes to read (0 = to the end)")
	f.StringVar(&lines, "lines", "", "line range A:B, 1-based and inclusive (A: or :B for open ends)")
	return cmd
}

// parseLines reads A:B, A: or :B (or a single line A).
func parseLines(s string) (int64, int64, error) {
	a, b, found := strings.Cut(s, ":")
	num := func(v string) (int64, error) {
		if v == "" {
			return 0, nil
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return 0, fmt.Errorf("invalid --lines %q: want A:B with line numbers from 1", s)
		}
		return n, nil
	}
	start, err := num(a)
	if err != nil {
		return 0, 0, err
	}
	end, err := num(b)
	if err != nil {
		return 0, 0, err
	}
	if !found {
		end = start
	}
	if start != 0 && end != 0 && end < start {
		return 0, 0, fmt.Errorf("invalid --lines %q: the end is before the start", s)
	}
	return start, end, nil
}

func (a *app) filesWriteCmd() *cobra.Command {
	var (
		opts agentapi.WriteOptions
		mode string
	)
	cmd := &cobra.Command{
		Use:   "write [--mode MODE] [-p] [--append] ID PATH < CONTENT",
		Short: "Write stdin to a file, atomically (owner and mode of an existing file are kept)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if mode != "" {
				m, err := agentapi.ParseMode(mode)
				if err != nil {
					return fmt.Errorf("invalid --mode: %w", err)
				}
				opts.Mode = m
			}
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = agent.WriteFile(cmd.Context(), args[1], cmd.InOrStdin(), opts)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&mode, "mode", "", "octal mode, e.g. 0755 (default 0644 for a new file, the current one otherwise)")
	f.BoolVarP(&opts.Mkdirs, "parents", "p", false, "create missing parent directories")
	f.BoolVar(&opts.Append, "append", false, "append instead of replacing (in place, not atomic)")
	return cmd
}

func (a *app) filesStatCmd() *cobra.Command {
	var (
		output string
		follow bool
	)
	cmd := &cobra.Command{
		Use:   "stat [-L] [-o json] ID PATH",
		Short: "Describe a path: type, size, mode, owner, time, link target",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			stat := agent.Stat
			if follow {
				stat = agent.StatFollow
			}
			info, err := stat(cmd.Context(), args[1])
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(a.stdout, info)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintf(tw, "path\t%s\ntype\t%s\nsize\t%d\nmode\t%s\nowner\t%d:%d\nmtime\t%s\n",
				info.Path, info.Type, info.Size, info.Mode, info.UID, info.GID, info.ModTime.Local().Format(time.RFC3339Nano))
			if info.IsSymlink {
				fmt.Fprintf(tw, "target\t%s\n", info.LinkTarget)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVarP(&follow, "dereference", "L", false, "describe what a symlink points to")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func (a *app) filesMkdirCmd() *cobra.Command {
	var mode string
	cmd := &cobra.Command{
		Use:   "mkdir [-m MODE] ID PATH...",
		Short: "Create directories and their missing parents (mkdir -p)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			perm, err := agentapi.ParseMode(mode)
			if err != nil {
				return fmt.Errorf("invalid --mode: %w", err)
			}
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, p := range args[1:] {
				if _, err := agent.Mkdir(cmd.Context(), p, perm); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&mode, "mode", "m", "0755", "octal mode of the directories made")
	return cmd
}

func (a *app) filesMvCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "mv [-f] ID FROM TO",
		Short: "Rename a file or directory (TO is the new path, not a directory to move into)",
		Args:  cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			_, err = agent.Move(cmd.Context(), args[1], args[2], force)
			return err
		},
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "replace an existing TO (a directory only if empty)")
	return cmd
}

func (a *app) filesRmCmd() *cobra.Command {
	var recursive bool
	cmd := &cobra.Command{
		Use:   "rm [-r] ID PATH...",
		Short: "Remove files (and, with -r, directories with their content)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			_, agent, err := a.agentFor(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			for _, p := range args[1:] {
				if path.Clean(p) == "/" {
					return fmt.Errorf("rm: refusing to remove /")
				}
				if err := agent.Remove(cmd.Context(), p, recursive); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&recursive, "recursive", "r", false, "remove directories and their content")
	return cmd
}
