// Package ports hands out host ports for sandboxes from configured ranges,
// safely across any number of berth processes.
//
// Each reserved port has a file Dir/port-N holding its reservation (owner,
// time, pid, host) as JSON. A process examines or changes a port's file only
// while holding an exclusive flock on it:
//
//   - Allocate scans the range from a random start, wrapping around. For
//     each candidate it takes the lock without waiting (a port another
//     allocator is examining is retried after the pass), keeps a reservation
//     that is younger than Grace, whose owner Alive reports alive, or whose
//     Alive fails, test-binds BindAddr:N (without SO_REUSEADDR, which on BSD
//     and macOS hides a wildcard listener), and then writes and fsyncs its
//     reservation before unlocking.
//   - Release, ReleaseOwner and Reclaim unlink a file while holding its lock.
//
// Unlinking under a lock has a classic race: a process that opened the file
// before the unlink can lock the orphaned inode afterwards while another
// locks a new file at the same path. So after locking, lockFile checks that
// the path still names the locked inode and starts over if not; since only
// the holder of that lock unlinks, at most one process at a time holds the
// lock that guards a port. Unlinking (rather than only truncating) keeps Dir
// listing exactly the reserved ports, which makes ReleaseOwner and Reclaim a
// directory read, and `ls Dir` a true picture.
//
// Reservations outlive the process that made them: a CLI run exits while its
// container keeps the port. flock locks, on the other hand, die with their
// process, so a crash never leaves a port locked.
package ports
