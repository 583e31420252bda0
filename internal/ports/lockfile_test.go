package ports

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

func TestLockFileBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), "port-1")
	f, err := lockFile(path, true, false)
	if err != nil {
		t.Fatal(err)
	}
	// A second open of the same file conflicts, even in this process.
	if g, err := lockFile(path, true, false); !errors.Is(err, errBusy) {
		g.Close()
		t.Fatalf("second lock: err = %v, want errBusy", err)
	}
	f.Close()
	g, err := lockFile(path, true, false)
	if err != nil {
		t.Fatalf("lock after close: %v", err)
	}
	g.Close()
}

func TestLockFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "port-1")
	if _, err := lockFile(path, false, true); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("err = %v, want ErrNotExist", err)
	}
	if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("lockFile without create made the file")
	}
}

// TestLockAfterUnlink replays the flock+unlink race step by step: B opens
// the file, A (holding the lock) unlinks it and unlocks, C creates a new
// file at the path and locks it, then B's flock succeeds on the old inode.
// B must see that its lock no longer guards the path.
func TestLockAfterUnlink(t *testing.T) {
	path := filepath.Join(t.TempDir(), "port-1")
	a, err := lockFile(path, true, false)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	a.Close()

	c, err := lockFile(path, true, false)
	if err != nil {
		t.Fatalf("C locks the new file: %v", err)
	}
	defer c.Close()

	linked, err := lockLinked(b, path, false)
	if err != nil {
		t.Fatalf("B's flock of the old inode: %v", err)
	}
	if linked {
		t.Fatal("B believes it holds the port while C holds it")
	}
	// And a fresh attempt by B finds C's lock.
	if d, err := lockFile(path, true, false); !errors.Is(err, errBusy) {
		d.Close()
		t.Fatalf("relock: err = %v, want errBusy", err)
	}
}
