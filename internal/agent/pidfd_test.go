package agent

import (
	"os/exec"
	"runtime/pprof"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// waitPidfd waits for a child's exit in the poller: it returns true once
// the child has exited, left to reap, and many waiting at once hold no
// thread each.
func TestWaitPidfd(t *testing.T) {
	threads := pprof.Lookup("threadcreate")
	before := threads.Count()
	const n = 50
	cmds := make([]*exec.Cmd, n)
	for i := range cmds {
		cmds[i] = exec.Command("sleep", "0.3")
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan bool, n)
	start := time.Now()
	for _, c := range cmds {
		go func() { done <- waitPidfd(c.Process.Pid) }()
	}
	for range n {
		if !<-done {
			t.Fatal("waitPidfd did not wait (no pidfd, or not in the poller)")
		}
	}
	if time.Since(start) < 200*time.Millisecond {
		t.Errorf("waitPidfd returned after %v, before the children exited", time.Since(start))
	}
	if grew := threads.Count() - before; grew >= n/2 {
		t.Errorf("%d threads created to wait for %d children", grew, n)
	}
	for _, c := range cmds {
		// Exited, not reaped: the zombie is there for Wait.
		var info unix.Siginfo
		if err := unix.Waitid(unix.P_PID, c.Process.Pid, &info, unix.WEXITED|unix.WNOHANG|unix.WNOWAIT, nil); err != nil || info.Signo == 0 {
			t.Errorf("child %d: not exited or already reaped (%v)", c.Process.Pid, err)
		}
		if err := c.Wait(); err != nil {
			t.Error(err)
		}
	}
}
