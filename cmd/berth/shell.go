package main

import "github.com/spf13/cobra"

// shellCmds is berth shell. (Stub: filled in by the PTY work.)
func (a *app) shellCmds() []*cobra.Command { return nil }
