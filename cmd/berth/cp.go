package main

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
)

// cpCmds is berth cp.
func (a *app) cpCmds() []*cobra.Command { return []*cobra.Command{a.cpCmd()} }

func (a *app) cpCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "cp [-q] SRC DST",
		Short: "Copy files or directories between the host and a sandbox (one side is ID:PATH)",
		Long: `Copy files or directories between the host and a sandbox, as docker cp does.

One of SRC and DST is ID:PATH, a path in sandbox ID (absolute, or relative to
its workdir); the other is a local path, or - for a tar stream on stdin (to
upload into a directory) or stdout (to download).

  - When DST is an existing directory, SRC is copied into it under its own name.
  - Otherwise SRC is copied as DST, whose parent must exist.
  - A directory SRC ending in /. copies its content only.
  - Symlinks are copied as symlinks; modes and times are kept. In the sandbox,
    what is copied belongs to the sandbox user; every access is checked
    against that user's permissions.

A local path with a colon in it needs a ./ or / in front.`,
		Example: `  berth cp ./project sb1:/workspace      # -> /workspace/project
  berth cp sb1:/workspace/out.log .       # -> ./out.log
  berth cp sb1:results ./results-copy     # the workdir's results/ as ./results-copy
  tar -C src -c . | berth cp - sb1:/workspace/src
  berth cp sb1:/workspace - | tar -t`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, dst, err := parseCopyArgs(args[0], args[1])
			if err != nil {
				return err
			}
			remote := src
			if dst.remote {
				remote = dst
			}
			ctx := cmd.Context()
			sb, agent, err := a.agentFor(ctx, remote.ref)
			if err != nil {
				return err
			}
			var res agentapi.TarResult
			switch {
			case src.local == "-":
				if res, err = agent.UploadTar(ctx, dst.path, cmd.InOrStdin()); err != nil {
					err = fmt.Errorf("copy stdin to %s: %w", describeCopyArg(dst, sb.ID), err)
				}
			case dst.local == "-":
				if err = downloadTo(cmd, agent, src.path, a.stdout); err != nil {
					err = fmt.Errorf("copy %s to stdout: %w", describeCopyArg(src, sb.ID), err)
				}
				quiet = true
			case dst.remote:
				res, err = agent.CopyIn(ctx, src.local, dst.path)
			default:
				res, err = agent.CopyOut(ctx, src.path, dst.local)
			}
			if err != nil {
				return err
			}
			if !quiet {
				fmt.Fprintf(a.stderr, "copied %s to %s\n", summarize(res), describeCopyArg(dst, sb.ID))
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "print nothing on success")
	return cmd
}

// downloadTo streams the tar of p to w; a report of left-out entries at
// the end of the stream is an error.
func downloadTo(cmd *cobra.Command, agent *agentapi.Client, p string, w io.Writer) error {
	rc, err := agent.DownloadTar(cmd.Context(), p)
	if err != nil {
		return err
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	return err
}

// copyArg is one side of berth cp: a sandbox path (remote) or a local one
// ("-" for stdin or stdout).
type copyArg struct {
	remote bool
	ref    string // sandbox ID or name
	path   string // in the sandbox
	local  string
}

// parseCopyArg reads ID:PATH or a local path, as docker cp does: a path
// starting with / or . is local whatever it contains, and so is one with no
// colon.
func parseCopyArg(s string) copyArg {
	if s == "-" || strings.HasPrefix(s, "/") || strings.HasPrefix(s, ".") {
		return copyArg{local: s}
	}
	ref, p, ok := strings.Cut(s, ":")
	if !ok || ref == "" {
		return copyArg{local: s}
	}
	if p == "" {
		p = "." // the workdir
	}
	return copyArg{remote: true, ref: ref, path: p}
}

// parseCopyArgs checks that exactly one side is in a sandbox.
func parseCopyArgs(src, dst string) (copyArg, copyArg, error) {
	s, d := parseCopyArg(src), parseCopyArg(dst)
	switch {
	case s.remote && d.remote:
		return s, d, errors.New("cp: copying from one sandbox to another is not supported; copy to the host first")
	case !s.remote && !d.remote:
		return s, d, fmt.Errorf("cp: one of SRC and DST must be ID:PATH (got %q and %q)", src, dst)
	}
	return s, d, nil
}

func describeCopyArg(c copyArg, id string) string {
	switch {
	case c.remote:
		return id + ":" + c.path
	case c.local == "-":
		return "stdout"
	}
	return c.local
}

// summarize says what a copy moved, in a few words.
func summarize(r agentapi.TarResult) string {
	parts := []string{plural(r.Files, "file")}
	if r.Dirs > 0 {
		parts = append(parts, plural(r.Dirs, "dir"))
	}
	if n := r.Symlinks + r.HardLinks; n > 0 {
		parts = append(parts, plural(n, "link"))
	}
	if r.Skipped > 0 {
		parts = append(parts, fmt.Sprintf("%d special files skipped", r.Skipped))
	}
	return strings.Join(parts, ", ") + " (" + humanBytes(r.Bytes) + ")"
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

func humanBytes(n int64) string {
	const unit = 1000
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %cB", float64(n)/float64(div), "kMGTPE"[exp])
}
