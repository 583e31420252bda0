//go:build unix

package ports

import (
	"errors"
	"os"
	"syscall"
)

const flockSupported = true

// flock takes an exclusive BSD lock on f's open file description. Such a
// lock conflicts with any other open of the same file, in this process or
// another, and is dropped by the kernel when the file is closed or its
// process dies, so a crashed allocator never leaves a port locked.
func flock(f *os.File, wait bool) error {
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	for {
		err := syscall.Flock(int(f.Fd()), how)
		switch {
		case err == nil:
			return nil
		case errors.Is(err, syscall.EINTR):
			continue
		case errors.Is(err, syscall.EWOULDBLOCK):
			return errBusy
		default:
			return &os.PathError{Op: "flock", Path: f.Name(), Err: err}
		}
	}
}

// noReuseAddr clears SO_REUSEADDR, which Go sets on every listener. On BSD
// and macOS it lets a bind to one address succeed next to a wildcard
// listener on the same port, hiding exactly the clash the test bind looks for.
func noReuseAddr(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 0)
	})
	if err != nil {
		return err
	}
	return serr
}
