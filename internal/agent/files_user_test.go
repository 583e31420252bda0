package agent

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"testing"
)

// User threads act as the user (what they create is the user's), run
// many operations on the threads they started with, pass panics on, and
// close more than once.
func TestUserThreads(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("acting as another user needs root")
	}
	dir := t.TempDir()
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	asked := make(chan struct{})
	var once sync.Once
	u, err := startUserThreads(4321, 4321, func() bool { once.Do(func() { close(asked) }); return false })
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	// Both threads busy: the next operation asks for room, gets none, and
	// waits for a thread.
	release := make(chan struct{})
	var wg sync.WaitGroup
	for i := range minUserThreads + 1 {
		wg.Go(func() {
			err := u.run(func() error {
				<-release
				return os.WriteFile(filepath.Join(dir, string(rune('a'+i))), nil, 0o600)
			})
			if err != nil {
				t.Error(err)
			}
		})
		if i == minUserThreads-1 {
			for busy := false; !busy; {
				u.mu.Lock()
				busy = u.idle == 0 && u.n == minUserThreads
				u.mu.Unlock()
				runtime.Gosched()
			}
		}
	}
	<-asked
	close(release)
	wg.Wait()
	if u.n != minUserThreads {
		t.Errorf("%d threads, want %d: none may be made without room", u.n, minUserThreads)
	}
	st, err := os.Stat(filepath.Join(dir, "a"))
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 4321 || sys.Gid != 4321 {
		t.Errorf("file made as %d:%d, want 4321:4321", sys.Uid, sys.Gid)
	}
	// Root's file stays out of reach.
	secret := filepath.Join(dir, "secret")
	if err := os.WriteFile(secret, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := u.run(func() error { _, err := os.ReadFile(secret); return err }); !errors.Is(err, os.ErrPermission) {
		t.Errorf("read root's 0600 file as the user: %v, want permission denied", err)
	}
	func() {
		defer func() {
			if v := recover(); v != "boom" {
				t.Errorf("panic %v, want boom passed on", v)
			}
		}()
		_ = u.run(func() error { panic("boom") })
	}()
	// Still serving after a panic.
	if err := u.run(func() error { return nil }); err != nil {
		t.Error(err)
	}
	u.close()
	u.close()
	if err := u.run(func() error { return nil }); !errors.Is(err, errShuttingDown) {
		t.Errorf("run after close: %v", err)
	}
}
