package server

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/monitor"
)

// MemoryLabel records, on a sandbox the server made, the memory limit its
// owner's quota counts. The server sets it; a request may not.
const MemoryLabel = "berth.quota.memory"

// settledGrace is how long a finished create keeps its reservation while
// the view has not shown the new sandbox yet.
const settledGrace = time.Minute

// quota checks the tenants' quotas. A create holds a reservation from the
// check until the view shows its sandbox, so concurrent creates cannot
// together pass a limit that each passes alone.
type quota struct {
	mu      sync.Mutex
	pending map[*reservation]struct{}
}

type reservation struct {
	owner   string
	memory  int64
	id      string    // set when the create succeeded
	settled time.Time // when it did
}

func newQuota() *quota { return &quota{pending: map[*reservation]struct{}{}} }

// reserve checks that one more sandbox with memory bytes fits t's quota,
// and holds its place. A tenant without quotas gets a nil reservation.
func (q *quota) reserve(view View, t *tenant, memory int64) (*reservation, error) {
	if t.MaxSandboxes == 0 && t.MaxMemory == 0 {
		return nil, nil
	}
	if t.MaxMemory > 0 && memory == 0 {
		return nil, badRequestf("memory: tenant %q has a memory quota (%s), so a sandbox needs a memory limit; set \"memory\"",
			t.Name, formatSize(t.MaxMemory))
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	list := view.List(monitor.Filter{Owner: t.Name})
	seen := make(map[string]bool, len(list))
	count, used := len(list), int64(0)
	for _, sb := range list {
		seen[sb.ID] = true
		if v, err := strconv.ParseInt(sb.Labels[MemoryLabel], 10, 64); err == nil && v > 0 {
			used += v
		}
	}
	now := time.Now()
	for r := range q.pending {
		if r.owner != t.Name {
			continue
		}
		if r.id != "" && (seen[r.id] || now.Sub(r.settled) > settledGrace) {
			delete(q.pending, r) // the view counts it now (or it is long gone)
			continue
		}
		count++
		used += r.memory
	}
	if t.MaxSandboxes > 0 && count+1 > t.MaxSandboxes {
		return nil, &quotaError{fmt.Sprintf("tenant %q has %d sandboxes, its quota is %d: remove one first", t.Name, count, t.MaxSandboxes)}
	}
	if t.MaxMemory > 0 && used+memory > t.MaxMemory {
		return nil, &quotaError{fmt.Sprintf("tenant %q: %s more memory would make %s, its quota is %s",
			t.Name, formatSize(memory), formatSize(used+memory), formatSize(t.MaxMemory))}
	}
	r := &reservation{owner: t.Name, memory: memory}
	q.pending[r] = struct{}{}
	return r, nil
}

// settle marks r's create done: it counts until the view shows id.
func (q *quota) settle(r *reservation, id string) {
	if r == nil {
		return
	}
	q.mu.Lock()
	r.id, r.settled = id, time.Now()
	q.mu.Unlock()
}

// release drops r (its create failed).
func (q *quota) release(r *reservation) {
	if r == nil {
		return
	}
	q.mu.Lock()
	delete(q.pending, r)
	q.mu.Unlock()
}

// forget drops the reservation of a removed sandbox.
func (q *quota) forget(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for r := range q.pending {
		if r.id == id {
			delete(q.pending, r)
		}
	}
}

// formatSize writes bytes with the largest unit that divides them.
func formatSize(n int64) string {
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"t", 1 << 40}, {"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return strconv.FormatInt(n/u.size, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "b"
}
