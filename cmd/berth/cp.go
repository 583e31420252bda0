package main

import "github.com/spf13/cobra"

// cpCmds is berth cp. (Stub: filled in by the files work.)
func (a *app) cpCmds() []*cobra.Command { return nil }
