package main

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/sandbox"
)

func (a *app) imageCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "image", Short: "Manage runtime images (base image + berth-agent)"}
	cmd.AddCommand(a.imageBuildCmd(), a.imageLsCmd())
	return cmd
}

func (a *app) imageBuildCmd() *cobra.Command {
	var base, output string
	var force bool
	cmd := &cobra.Command{
		Use:   "build [--base IMG] [--force] [-o json]",
		Short: "Build (or find) the runtime image for a base image; prints its tag",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			s := a.cfg.Sandbox
			spec := sandbox.ImageSpec{Base: s.BaseContainerImage, ExtraDeps: s.RuntimeExtraDeps, ForceRebuild: force || s.ForceRebuildRuntime}
			if cmd.Flags().Changed("base") {
				spec.Base = base
			}
			var err error
			if spec.BuildArgs, err = s.BuildArgs(); err != nil {
				return err
			}
			if _, err := a.runtime(cmd.Context()); err != nil {
				return err
			}
			res, err := a.images.Resolve(cmd.Context(), spec)
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(a.stdout, map[string]any{"ref": res.Ref, "base": spec.Base, "built": res.Built, "pulled": res.Pulled})
			}
			fmt.Fprintln(a.stdout, res.Ref)
			return nil
		},
	}
	cmd.Flags().StringVar(&base, "base", "", "base image (default: sandbox.base_container_image)")
	cmd.Flags().BoolVar(&force, "force", false, "rebuild even if the image exists")
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}

func (a *app) imageLsCmd() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "ls [-o json]",
		Short: "List the runtime images berth has built",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			if _, err := a.runtime(cmd.Context()); err != nil {
				return err
			}
			list, err := a.images.List(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(a.stdout, list)
			}
			tw := tabwriter.NewWriter(a.stdout, 2, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "IMAGE\tBASE\tSIZE\tCREATED")
			for _, im := range list {
				fmt.Fprintf(tw, "%s\t%s\t%.1fMiB\t%s\n", im.Ref, im.Base, float64(im.Size)/(1<<20), ago(time.Since(im.CreatedAt)))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "output format: json")
	return cmd
}
