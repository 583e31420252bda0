package ports

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Busy ports (locked by another allocator while it examines them) are
// retried after the first pass, at most busyRounds times with a backoff
// doubling from 1ms up to busyMaxWait; locks are only ever held for the few
// file operations, Alive call and test bind of one examination.
const (
	busyRounds  = 10
	busyMaxWait = 100 * time.Millisecond
)

type outcome int

const (
	got      outcome = iota
	reserved         // a live reservation holds it
	inUse            // the test bind failed
	busy             // another allocator holds its lock
)

// scan counts what one Allocate call saw, for its error message.
type scan struct {
	r                     Range
	owner                 string
	candidates, tried     int
	reserved, inUse, busy int
	aliveCache            map[string]bool // Alive's answers, asked once per owner
}

func (s *scan) err(cause error) error {
	return fmt.Errorf("ports: allocate in %s for %q: tried %d of %d ports (%d reserved, %d in use, %d locked by other allocators): %w",
		s.r, s.owner, s.tried, s.candidates, s.reserved, s.inUse, s.busy, cause)
}

// Allocate reserves one free port of r for owner and returns it. exclude
// lists ports not to return (e.g. ones this create already holds).
//
// The scan starts at a random port of r and goes up, wrapping around to
// r.Min, so concurrent allocators spread over the range instead of racing
// for its first port. It fails wrapping ErrNoFreePort once every port has
// been tried, or wrapping ctx.Err() when ctx ends first.
func (a *Allocator) Allocate(ctx context.Context, r Range, owner string, exclude ...int) (int, error) {
	if err := r.validate(); err != nil {
		return 0, fmt.Errorf("ports: allocate for %q: %w", owner, err)
	}
	if owner == "" {
		return 0, fmt.Errorf("ports: allocate in %s: empty owner", r)
	}
	skip := make(map[int]bool, len(exclude))
	for _, p := range exclude {
		if r.contains(p) {
			skip[p] = true
		}
	}
	s := &scan{r: r, owner: owner, candidates: r.size() - len(skip), aliveCache: map[string]bool{}}
	n, first := r.size(), a.intN(r.size())
	var retry []int
	for i := range n {
		p := r.Min + (first+i)%n
		if skip[p] {
			continue
		}
		if err := ctx.Err(); err != nil {
			s.busy = len(retry)
			return 0, s.err(err)
		}
		s.tried++
		if ok, err := a.examine(ctx, s, p, &retry); err != nil {
			return 0, err
		} else if ok {
			return p, nil
		}
	}
	wait := time.Millisecond
	for round := 0; len(retry) > 0 && round < busyRounds; round++ {
		// Another allocator is examining these ports: look again shortly.
		if err := sleep(ctx, wait); err != nil {
			s.busy = len(retry)
			return 0, s.err(err)
		}
		wait = min(2*wait, busyMaxWait)
		todo := retry
		retry = nil
		for i, p := range todo {
			if err := ctx.Err(); err != nil {
				s.busy = len(retry) + len(todo) - i
				return 0, s.err(err)
			}
			if ok, err := a.examine(ctx, s, p, &retry); err != nil {
				return 0, err
			} else if ok {
				return p, nil
			}
		}
	}
	s.busy = len(retry)
	return 0, s.err(ErrNoFreePort)
}

// examine tries port p, counting the outcome in s and appending p to retry
// when it is busy. It reports whether p is now reserved for s.owner.
func (a *Allocator) examine(ctx context.Context, s *scan, p int, retry *[]int) (bool, error) {
	o, err := a.try(ctx, p, s.owner, s.aliveCache)
	if err != nil {
		return false, err
	}
	switch o {
	case got:
		return true, nil
	case busy:
		*retry = append(*retry, p)
	case reserved:
		s.reserved++
	case inUse:
		s.inUse++
	}
	return false, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// try examines port p under its lock and reserves it for owner if no live
// reservation holds it and the test bind succeeds. It returns an error only
// for failures that would repeat on every port (an unusable Dir).
func (a *Allocator) try(ctx context.Context, p int, owner string, aliveCache map[string]bool) (outcome, error) {
	path := portPath(a.dir, p)
	f, err := lockFile(path, true, false)
	if errors.Is(err, errBusy) {
		return busy, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ports: allocate port %d: %w", p, err)
	}
	defer f.Close() // unlocks, after any Remove below

	res, err := readReservation(f, p)
	if err != nil {
		a.log.Warn("ports: ignoring unreadable reservation", "port", p, "err", err)
	}
	if res != nil {
		live, err := a.live(ctx, res, aliveCache)
		if err != nil {
			a.log.Warn("ports: keeping reservation of unknown owner", "port", p, "owner", res.Owner, "err", err)
		}
		if live {
			return reserved, nil
		}
	}
	if err := a.testBind(p); err != nil {
		a.log.Debug("ports: skipping port in use", "port", p, "err", err)
		// Nothing worth keeping is in the file: it is empty (we just
		// created it), unreadable, or a dead owner's reservation.
		a.remove(path, p)
		return inUse, nil
	}
	if res != nil {
		a.log.Info("ports: taking over reservation of gone owner", "port", p, "old_owner", res.Owner, "owner", owner)
	}
	err = writeReservation(f, reservation{Port: p, Owner: owner, Created: a.now().UTC(), PID: a.pid, Host: a.host})
	if err != nil {
		a.remove(path, p)
		return 0, fmt.Errorf("ports: allocate port %d: write reservation: %w", p, err)
	}
	a.log.Debug("ports: reserved", "port", p, "owner", owner)
	return got, nil
}

// remove unlinks a port's file; the caller must hold its lock.
func (a *Allocator) remove(path string, p int) error {
	err := os.Remove(path)
	if err != nil {
		a.log.Warn("ports: remove reservation file", "port", p, "err", err)
	}
	return err
}
