package agent

import (
	"fmt"
	"runtime"

	"golang.org/x/sys/unix"
)

// asUser runs fn with the file system identity of the sandbox user, so the
// kernel itself checks every path fn touches against that user's
// permissions (ACLs, sticky directories and read-only mounts included) and
// whatever fn creates belongs to the user, exactly as if the user's own
// process did it.
//
// How: when the agent runs as root for another user (s.cred set), fn runs
// on a goroutine locked to its own OS thread, on which the agent first
// drops the supplementary groups and sets fsuid and fsgid to the user's
// (setgroups(2), setfsgid(2), setfsuid(2) act on the calling thread only;
// a non-zero fsuid also clears the thread's file capabilities such as
// CAP_DAC_OVERRIDE and CAP_FOWNER). The goroutine ends without unlocking,
// so the Go runtime ends the thread with it: the identity never leaks to
// another goroutine. Descriptors fn opens stay usable from any goroutine,
// so a file opened as the user can be streamed from the handler.
//
// Otherwise (the user is the agent's own user) fn runs directly.
func (s *Server) asUser(fn func() error) error {
	if s.cred == nil {
		return fn()
	}
	uid, gid := int(s.cred.Uid), int(s.cred.Gid)
	type result struct {
		err      error
		panicked any
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread, on purpose: see above.
		var r result
		defer func() {
			if v := recover(); v != nil {
				r.panicked = v
			}
			done <- r
		}()
		if r.err = becomeUser(uid, gid); r.err == nil {
			r.err = fn()
		}
	}()
	r := <-done
	if r.panicked != nil {
		panic(r.panicked) // in the handler's goroutine, where recoverPanics sees it
	}
	return r.err
}

// becomeUser gives the calling thread the file system identity uid:gid
// with no supplementary groups, and checks that it took.
func becomeUser(uid, gid int) error {
	if err := unix.Setgroups(nil); err != nil {
		return fmt.Errorf("drop supplementary groups: %w", err)
	}
	if err := unix.Setfsgid(gid); err != nil {
		return fmt.Errorf("setfsgid %d: %w", gid, err)
	}
	if err := unix.Setfsuid(uid); err != nil {
		return fmt.Errorf("setfsuid %d: %w", uid, err)
	}
	// setfsuid(2) reports no failure: -1 changes nothing and returns the
	// current value.
	if got, _ := unix.SetfsgidRetGid(-1); got != gid {
		return fmt.Errorf("setfsgid %d did not take (fsgid %d)", gid, got)
	}
	if got, _ := unix.SetfsuidRetUid(-1); got != uid {
		return fmt.Errorf("setfsuid %d did not take (fsuid %d)", uid, got)
	}
	return nil
}
