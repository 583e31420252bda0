package ports

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// Release drops owner's reservation of port. Releasing a port that is not
// reserved, or reserved by another owner, does nothing and returns nil.
func (a *Allocator) Release(port int, owner string) error {
	if port < 1 || port > 65535 {
		return fmt.Errorf("ports: release port %d: out of 1..65535", port)
	}
	if _, err := a.releaseIf(port, owner); err != nil {
		return fmt.Errorf("ports: release port %d of %q: %w", port, owner, err)
	}
	return nil
}

// ReleaseOwner drops every reservation of owner. It goes on past a failure
// and returns all of them joined.
func (a *Allocator) ReleaseOwner(owner string) error {
	ports, err := a.reservedPorts()
	if err != nil {
		return fmt.Errorf("ports: release ports of %q: %w", owner, err)
	}
	var errs []error
	for _, p := range ports {
		if _, err := a.releaseIf(p, owner); err != nil {
			errs = append(errs, fmt.Errorf("ports: release port %d of %q: %w", p, owner, err))
		}
	}
	return errors.Join(errs...)
}

// releaseIf removes port's file if it holds owner's reservation, waiting for
// its lock. It reports whether it removed it.
func (a *Allocator) releaseIf(port int, owner string) (bool, error) {
	path := portPath(a.dir, port)
	f, err := lockFile(path, false, true)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	res, err := readReservation(f, port)
	if err != nil || res == nil || res.Owner != owner {
		return false, nil
	}
	if err := os.Remove(path); err != nil {
		return false, err
	}
	a.log.Debug("ports: released", "port", port, "owner", owner)
	return true, nil
}

// Reclaim removes reservations whose owner is gone and whose grace has
// passed, and returns the ports freed, in ascending order. Ports being
// examined by another allocator are left for a later call. A failing Alive
// keeps the reservation; its errors are returned joined, with the ports
// freed anyway. It also removes files holding no reservation.
func (a *Allocator) Reclaim(ctx context.Context) ([]int, error) {
	ports, err := a.reservedPorts()
	if err != nil {
		return nil, fmt.Errorf("ports: reclaim: %w", err)
	}
	var freed []int
	var errs []error
	aliveCache := map[string]bool{}
	for _, p := range ports {
		if err := ctx.Err(); err != nil {
			errs = append(errs, fmt.Errorf("ports: reclaim: %w", err))
			break
		}
		ok, err := a.reclaim(ctx, p, aliveCache)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			freed = append(freed, p)
		}
	}
	slices.Sort(freed)
	return freed, errors.Join(errs...)
}

func (a *Allocator) reclaim(ctx context.Context, p int, aliveCache map[string]bool) (bool, error) {
	path := portPath(a.dir, p)
	f, err := lockFile(path, false, false)
	if errors.Is(err, errBusy) || errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("ports: reclaim port %d: %w", p, err)
	}
	defer f.Close()
	res, err := readReservation(f, p)
	if err != nil || res == nil {
		// Holding no reservation: just created by an allocator that has not
		// locked it yet (which will notice the unlink and start over), left
		// by one that died while examining the port, or not berth's.
		if err != nil {
			a.log.Warn("ports: removing unreadable reservation", "port", p, "err", err)
		}
		return false, a.remove(path, p)
	}
	live, err := a.live(ctx, res, aliveCache)
	if live {
		return false, err
	}
	if err := os.Remove(path); err != nil {
		return false, fmt.Errorf("ports: reclaim port %d: %w", p, err)
	}
	a.log.Info("ports: reclaimed reservation of gone owner", "port", p, "owner", res.Owner)
	return true, nil
}

// reservedPorts lists the ports that have a file in Dir.
func (a *Allocator) reservedPorts() ([]int, error) {
	entries, err := os.ReadDir(a.dir)
	if err != nil {
		return nil, err
	}
	var ports []int
	for _, e := range entries {
		if p, ok := portFromName(e.Name()); ok && e.Type().IsRegular() {
			ports = append(ports, p)
		}
	}
	return ports, nil
}
