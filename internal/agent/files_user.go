package agent

import (
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// File operations run with the file system identity of the sandbox user,
// so the kernel itself checks every path they touch against that user's
// permissions (ACLs, sticky directories and read-only mounts included) and
// whatever they create belongs to the user, exactly as if the user's own
// process did it.
//
// How: when the agent runs as root for another user (s.cred set), they run
// on OS threads that dropped their supplementary groups and set fsuid and
// fsgid to the user's (setgroups(2), setfsgid(2), setfsuid(2) act on the
// calling thread only; a non-zero fsuid also clears the thread's file
// capabilities such as CAP_DAC_OVERRIDE and CAP_FOWNER). Each such thread
// runs one goroutine, locked to it for good, that takes operations from a
// queue: the identity never reaches another goroutine, and no thread is
// made per operation. That matters at the sandbox's pids limit, where the
// agent's threads count with the user's processes: the Go runtime cannot
// make a thread there, and failing to is fatal. So threads are made at
// start, and more only while the limit leaves room.
//
// Descriptors an operation opens stay usable from any goroutine, so a file
// opened as the user can be streamed from the handler.

// User threads: how many start with the agent, and how many there may be.
const (
	minUserThreads = 2
	maxUserThreads = 16
	// reservedThreads is how many idle threads the agent makes at start.
	reservedThreads = 8
	// pidsRoom is how far under the sandbox's pids limit the agent must be
	// to make one more thread.
	pidsRoom = 16
)

// asUser runs fn with the sandbox user's file system identity (see above);
// with the user being the agent's own, directly.
func (s *Server) asUser(fn func() error) error {
	if s.cred == nil {
		return fn()
	}
	if s.users == nil {
		return fmt.Errorf("no threads to act as uid %d", s.cred.Uid) // never as root instead
	}
	return s.users.run(fn)
}

// userThreads are the threads that run file operations as the user.
type userThreads struct {
	uid, gid int
	// room reports whether one more thread fits under the pids limit.
	room func() bool

	jobs     chan userJob
	stop     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup

	mu   sync.Mutex
	n    int // threads started
	idle int // threads waiting for a job
}

type userJob struct {
	fn   func() error
	done chan userResult
}

type userResult struct {
	err      error
	panicked any
}

// startUserThreads starts minUserThreads threads as uid:gid, and fails if
// one cannot take that identity.
func startUserThreads(uid, gid int, room func() bool) (*userThreads, error) {
	u := &userThreads{uid: uid, gid: gid, room: room, jobs: make(chan userJob), stop: make(chan struct{})}
	for range minUserThreads {
		ready := make(chan error, 1)
		u.n++
		u.wg.Add(1)
		go u.thread(ready)
		if err := <-ready; err != nil {
			u.close()
			return nil, err
		}
	}
	return u, nil
}

// thread is the goroutine of one user thread: it takes the identity, says
// so on ready, then runs jobs until stop. It never unlocks its thread, so
// the runtime ends the thread with it.
func (u *userThreads) thread(ready chan<- error) {
	defer u.wg.Done()
	runtime.LockOSThread()
	err := becomeUser(u.uid, u.gid)
	ready <- err
	if err != nil {
		u.mu.Lock()
		u.n--
		u.mu.Unlock()
		return
	}
	for {
		u.mu.Lock()
		u.idle++
		u.mu.Unlock()
		select {
		case job := <-u.jobs:
			u.mu.Lock()
			u.idle--
			u.mu.Unlock()
			job.done <- runJob(job.fn)
		case <-u.stop:
			return
		}
	}
}

func runJob(fn func() error) (r userResult) {
	defer func() {
		if v := recover(); v != nil {
			r.panicked = v
		}
	}()
	r.err = fn()
	return r
}

// run runs fn on a user thread, making one more when all are busy and the
// pids limit leaves room; else fn waits for a thread to be free.
func (u *userThreads) run(fn func() error) error {
	u.mu.Lock()
	if u.idle == 0 && u.n < maxUserThreads && u.room() {
		u.n++
		u.wg.Add(1)
		go u.thread(make(chan error, 1))
	}
	u.mu.Unlock()
	job := userJob{fn: fn, done: make(chan userResult, 1)}
	select {
	case u.jobs <- job:
	case <-u.stop:
		return errShuttingDown
	}
	r := <-job.done
	if r.panicked != nil {
		panic(r.panicked) // in the handler's goroutine, where recoverPanics sees it
	}
	return r.err
}

// stop tells the threads to end once their jobs are done (a job streaming
// to a slow client lasts as long as its request), and refuses new jobs.
func (u *userThreads) stopAll() {
	u.stopOnce.Do(func() { close(u.stop) })
}

// close stops the threads and waits for them.
func (u *userThreads) close() {
	u.stopAll()
	u.wg.Wait()
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

// reserveThreads makes the Go runtime start n OS threads at once, then
// leaves them idle: it keeps idle threads and takes one of them whenever a
// goroutine blocks in a system call, before it makes a new one. Made at
// start, while the sandbox has few processes, they carry the agent through
// a sandbox at its pids limit.
func reserveThreads(n int) {
	var locked sync.WaitGroup
	release := make(chan struct{})
	locked.Add(n)
	var done sync.WaitGroup
	done.Add(n)
	for range n {
		go func() {
			defer done.Done()
			runtime.LockOSThread()
			locked.Done()
			<-release // every goroutine holds its own thread now
			runtime.UnlockOSThread()
		}()
	}
	locked.Wait()
	close(release)
	done.Wait()
}

// pidsRoomFunc reports whether the sandbox's cgroup (under root) allows
// pidsRoom more tasks; without a limit, or when it cannot tell, yes.
func pidsRoomFunc(root string) func() bool {
	return func() bool {
		current, limit := pidsUsage(root)
		return limit < 0 || limit-current > pidsRoom
	}
}
