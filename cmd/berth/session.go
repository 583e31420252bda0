package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// execInSession runs req in the named persistent shell session.
// (Stub: filled in by the sessions work.)
func (a *app) execInSession(cmd *cobra.Command, sb sandbox.Sandbox, agent *agentapi.Client, session string, req agentapi.ExecRequest) error {
	return codeError{exitExecFailed, errors.New("persistent sessions are not available yet")}
}
