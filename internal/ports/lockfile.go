package ports

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// errBusy reports that another process (or goroutine) holds a port's lock.
var errBusy = errors.New("lock busy")

// maxRelinks bounds how often lockFile retries after losing the race with an
// unlink; every retry means another holder made progress, so hitting it
// means something outside berth is churning the directory.
const maxRelinks = 100

// lockFile opens path (creating it when create is set) and takes an exclusive
// flock on it, waiting for it when wait is set and failing with errBusy
// otherwise. It returns a file whose lock is held; closing it unlocks.
//
// Reservation files are unlinked on release, so between our open and our
// flock the holder may have unlinked the file and another process may have
// created a fresh one at the same path. A lock on the unlinked inode guards
// nothing, so after locking we check that the path still names our inode and
// start over if not. Since only a lock holder unlinks, and only the inode the
// path names, the inode we verified stays linked while we hold its lock: at
// most one process at a time holds the lock that counts for a port.
// With create unset, a missing file yields an error matching fs.ErrNotExist.
func lockFile(path string, create, wait bool) (*os.File, error) {
	flags := os.O_RDWR
	if create {
		flags |= os.O_CREATE
	}
	for range maxRelinks {
		f, err := os.OpenFile(path, flags, 0o600)
		if err != nil {
			return nil, err
		}
		linked, err := lockLinked(f, path, wait)
		if err != nil {
			f.Close()
			return nil, err
		}
		if linked {
			return f, nil
		}
		f.Close() // lost the race with an unlink: look again at what the path names now
	}
	return nil, fmt.Errorf("lock %s: file replaced %d times while locking", path, maxRelinks)
}

// lockLinked flocks f and reports whether path still names f's inode.
// When it does not, f stays locked (the caller closes it).
func lockLinked(f *os.File, path string, wait bool) (bool, error) {
	if err := flock(f, wait); err != nil {
		return false, err
	}
	held, err := f.Stat()
	if err != nil {
		return false, err
	}
	now, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return os.SameFile(held, now), nil
}
