//go:build !unix

package ports

import (
	"errors"
	"os"
	"syscall"
)

const flockSupported = false

func flock(*os.File, bool) error { return errors.ErrUnsupported }

func noReuseAddr(_, _ string, _ syscall.RawConn) error { return nil }
