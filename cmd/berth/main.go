// Command berth creates and drives sandboxes for AI agents on a Docker engine.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := newRoot(os.Stdout, os.Stderr).ExecuteContext(ctx)
	stop()
	os.Exit(exitCode(os.Stderr, err))
}

// exitError carries a specific exit code, such as a command's own code from
// `berth exec`, without a message of berth's.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// codeError is a berth failure that must exit with a given code (125 when
// `berth exec` fails before the command runs, as `docker exec` does).
type codeError struct {
	code int
	err  error
}

func (e codeError) Error() string { return e.err.Error() }
func (e codeError) Unwrap() error { return e.err }

// exitCode reports err on stderr (unless it only carries a code) and
// returns the process's exit code.
func exitCode(stderr io.Writer, err error) int {
	if err == nil {
		return 0
	}
	var ee exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	fmt.Fprintln(stderr, "berth:", err)
	var ce codeError
	if errors.As(err, &ce) {
		return ce.code
	}
	return 1
}
