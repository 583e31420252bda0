package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// execDetached starts req as a background process and prints its id.
// (Stub: filled in by the background processes work, with ps, output, kill.)
func (a *app) execDetached(cmd *cobra.Command, sb sandbox.Sandbox, agent *agentapi.Client, req agentapi.ExecRequest) error {
	return codeError{exitExecFailed, errors.New("background processes are not available yet")}
}

// processCmds are berth ps, output and kill.
func (a *app) processCmds() []*cobra.Command { return nil }
