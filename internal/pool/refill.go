package pool

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Run adopts the pooled sandboxes the engine has (removing those of shapes
// no longer configured, stale runtime images, stopped containers and agents
// that do not answer), then keeps every pool at its size until ctx ends:
// after each claim a replacement is created in the background, at most
// Concurrency at a time. It returns nil once ctx has ended and every
// refill it started has finished; the pooled sandboxes stay, for the next
// Run to adopt.
func (m *Manager) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("pool: Run called twice")
	}
	defer m.running.Store(false)
	if err := m.adopt(ctx, true); err != nil && ctx.Err() == nil {
		m.log.Warn("adopting pooled sandboxes", "err", err)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	resync := time.NewTicker(m.opts.Resync)
	defer resync.Stop()
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		next := m.refill(ctx, &wg)
		if !next.IsZero() {
			retry.Reset(max(time.Until(next), time.Millisecond))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.wake:
		case <-retry.C:
		case <-resync.C:
			if err := m.resync(ctx); err != nil && ctx.Err() == nil {
				m.log.Warn("pool resync", "err", err)
			}
		}
	}
}

// Fill adopts the pooled sandboxes of the configured shapes and fills every
// pool to its size in the foreground, Concurrency creates at a time; it
// returns when they are ready, with every create's error. It never removes
// pooled sandboxes of shapes it does not know (a server may keep them).
func (m *Manager) Fill(ctx context.Context) error {
	if m.running.Load() {
		return errors.New("pool: Fill while Run keeps the pools")
	}
	if err := m.adopt(ctx, false); err != nil {
		return err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, m.opts.Concurrency)
	m.mu.Lock()
	type job struct{ key string }
	var jobs []job
	for _, k := range m.order {
		s := m.shapes[k]
		for range s.size - len(s.ready) - s.filling {
			s.filling++
			jobs = append(jobs, job{k})
		}
	}
	m.mu.Unlock()
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := m.fillOne(ctx, j.key); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// refill starts creates for the pools below their size (and removes the
// extra sandboxes of pools above it) within the concurrency budget. It
// returns when the next refill of a backed-off shape is due (zero: none).
func (m *Manager) refill(ctx context.Context, wg *sync.WaitGroup) time.Time {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := time.Now()
	var next time.Time
	var extra []sandbox.Sandbox
	held := false
	if until := m.lastClaim.Add(m.opts.RefillDelay); now.Before(until) {
		held, next = true, until // the caller of the claim goes first
	}
	for _, k := range m.order {
		s := m.shapes[k]
		if n := len(s.ready) - s.size; n > 0 {
			extra = append(extra, s.ready[:n]...) // the oldest go
			s.ready = slices.Clone(s.ready[n:])
		}
		if held {
			continue
		}
		if now.Before(s.retryAt) {
			if s.size > len(s.ready)+s.filling && (next.IsZero() || s.retryAt.Before(next)) {
				next = s.retryAt
			}
			continue
		}
		for s.size > len(s.ready)+s.filling && m.inflight < m.opts.Concurrency {
			s.filling++
			m.inflight++
			wg.Go(func() {
				if err := m.fillOne(ctx, k); err != nil && ctx.Err() == nil {
					m.log.Warn("refill failed", "shape", k, "err", err)
				}
				m.mu.Lock()
				m.inflight--
				m.mu.Unlock()
				m.poke()
			})
		}
	}
	if len(extra) > 0 {
		wg.Go(func() { m.remove(context.WithoutCancel(ctx), extra, "pool above its size") })
	}
	return next
}

// fillOne creates one pooled sandbox of shape key and puts it in the pool.
// The caller has counted it in the shape's filling.
func (m *Manager) fillOne(ctx context.Context, key string) error {
	m.mu.Lock()
	s := m.shapes[key]
	spec := s.spec
	m.mu.Unlock()
	start := time.Now()
	// A create in flight finishes even when Run is stopped (Run waits for
	// it), so no half-made container is left behind.
	sb, err := m.rt.CreatePooled(context.WithoutCancel(ctx), spec, key, m.labels())
	m.mu.Lock()
	defer m.mu.Unlock()
	s.filling--
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		s.fails++
		s.lastErr = err.Error()
		s.backoff = min(max(2*s.backoff, minBackoff), maxBackoff)
		s.retryAt = time.Now().Add(s.backoff)
		return fmt.Errorf("fill pool %s: %w", key, err)
	}
	s.backoff, s.retryAt, s.lastErr = 0, time.Time{}, ""
	s.ready = append(s.ready, sb)
	m.log.Info("pooled sandbox ready", "shape", key, "sandbox", sb.ID, "took", time.Since(start).Round(time.Millisecond),
		"ready", len(s.ready), "size", s.size)
	return nil
}

// adopt takes the engine's pooled sandboxes into the pools: those of a
// configured shape, running, on the shape's current runtime image and whose
// agent answers, up to each pool's size. With removeUnknown, the rest are
// removed; otherwise only those of configured shapes are.
func (m *Manager) adopt(ctx context.Context, removeUnknown bool) error {
	list, err := m.listOurs(ctx, "")
	if err != nil {
		return err
	}
	inEngine := map[string]bool{}
	for _, p := range list {
		if p.Sandbox.State == "running" {
			inEngine[p.Sandbox.ID] = true
		}
	}
	m.mu.Lock()
	specs := map[string]sandbox.Spec{}
	known := map[string]bool{}
	for k, s := range m.shapes {
		specs[k] = s.spec
		// What another process claimed (or removed) since is no longer
		// the pool's.
		s.ready = slices.DeleteFunc(s.ready, func(sb sandbox.Sandbox) bool { return !inEngine[sb.ID] })
		for _, sb := range s.ready {
			known[sb.ID] = true
		}
	}
	m.mu.Unlock()
	images := map[string]string{}
	for k, spec := range specs {
		ref, err := m.rt.RuntimeImage(ctx, spec.Image)
		if err != nil {
			m.log.Warn("resolving a pool's runtime image", "shape", k, "err", err)
			continue
		}
		images[k] = ref
	}
	var drop []sandbox.Sandbox
	var adopted []docker.Pooled
	for _, p := range list {
		if known[p.Sandbox.ID] {
			continue
		}
		spec, configured := specs[p.Shape]
		switch {
		case !configured:
			if removeUnknown {
				m.log.Info("removing a pooled sandbox of a shape no longer configured", "sandbox", p.Sandbox.ID, "shape", p.Shape)
				drop = append(drop, p.Sandbox)
			}
			continue
		case p.Sandbox.State != "running":
			m.log.Info("removing a pooled sandbox that is not running", "sandbox", p.Sandbox.ID, "state", p.Sandbox.State)
		case images[p.Shape] != "" && p.Sandbox.RuntimeImage != images[p.Shape]:
			m.log.Info("removing a pooled sandbox of a stale runtime image", "sandbox", p.Sandbox.ID,
				"image", p.Sandbox.RuntimeImage, "current", images[p.Shape], "base", imageOf(spec))
		default:
			full, err := m.rt.Inspect(ctx, p.Sandbox.ContainerID)
			if err == nil {
				actx, cancel := context.WithTimeout(ctx, aliveTimeout)
				err = m.rt.Agent(full).Alive(actx)
				cancel()
			}
			if err == nil {
				p.Sandbox = full
				adopted = append(adopted, p)
				continue
			}
			m.log.Info("removing a pooled sandbox whose agent does not answer", "sandbox", p.Sandbox.ID, "err", err)
		}
		drop = append(drop, p.Sandbox)
	}
	m.mu.Lock()
	for _, p := range adopted {
		s := m.shapes[p.Shape]
		if s == nil || len(s.ready)+s.filling >= s.size {
			drop = append(drop, p.Sandbox)
			continue
		}
		s.ready = append(s.ready, p.Sandbox)
	}
	for _, s := range m.shapes {
		slices.SortStableFunc(s.ready, func(a, b sandbox.Sandbox) int { return a.CreatedAt.Compare(b.CreatedAt) })
	}
	m.mu.Unlock()
	if n := len(adopted); n > 0 {
		m.log.Info("adopted pooled sandboxes", "count", n)
	}
	m.remove(ctx, drop, "")
	m.poke()
	return ctx.Err()
}

// resync brings the pools in line with the engine: sandboxes claimed by
// another process or removed leave their pool; pooled sandboxes that are
// no longer running are removed; ones this manager does not know (another
// process made them, or a claim gave up) join their pool if it has room.
func (m *Manager) resync(ctx context.Context) error {
	m.mu.Lock()
	before := map[string]string{} // sandbox id → shape, of the ready ones
	for k, s := range m.shapes {
		for _, sb := range s.ready {
			before[sb.ID] = k
		}
	}
	m.mu.Unlock()
	list, err := m.listOurs(ctx, "")
	if err != nil {
		return err
	}
	seen := map[string]docker.Pooled{}
	for _, p := range list {
		seen[p.Sandbox.ID] = p
	}
	var drop []sandbox.Sandbox
	var candidates []docker.Pooled
	m.mu.Lock()
	for id, k := range before {
		p, ok := seen[id]
		if ok && p.Sandbox.State == "running" {
			continue
		}
		s := m.shapes[k]
		if i := slices.IndexFunc(s.ready, func(sb sandbox.Sandbox) bool { return sb.ID == id }); i >= 0 {
			if ok {
				drop = append(drop, s.ready[i])
			}
			s.ready = slices.Delete(s.ready, i, i+1)
		}
	}
	for _, p := range list {
		s := m.shapes[p.Shape]
		if _, mine := before[p.Sandbox.ID]; mine || s == nil || m.claiming[p.Sandbox.ID] || s.filling > 0 {
			continue // a fill in flight may be this very container
		}
		if slices.ContainsFunc(s.ready, func(sb sandbox.Sandbox) bool { return sb.ID == p.Sandbox.ID }) {
			continue
		}
		switch {
		case p.Sandbox.State == "running" && len(s.ready) < s.size:
			candidates = append(candidates, p)
		case p.Sandbox.State != "running" && time.Since(p.Sandbox.CreatedAt) > strayGrace:
			drop = append(drop, p.Sandbox)
		}
	}
	m.mu.Unlock()
	for _, p := range candidates {
		full, err := m.rt.Inspect(ctx, p.Sandbox.ContainerID)
		if err != nil || full.Owner != docker.OwnerPool {
			continue
		}
		m.mu.Lock()
		if s := m.shapes[p.Shape]; s != nil && len(s.ready) < s.size && !m.claiming[full.ID] &&
			!slices.ContainsFunc(s.ready, func(sb sandbox.Sandbox) bool { return sb.ID == full.ID }) {
			s.ready = append(s.ready, full)
		}
		m.mu.Unlock()
	}
	m.remove(ctx, drop, "not running")
	m.poke()
	return nil
}

// remove removes pooled sandboxes, logging failures.
func (m *Manager) remove(ctx context.Context, list []sandbox.Sandbox, why string) {
	for _, sb := range list {
		if why != "" {
			m.log.Info("removing a pooled sandbox", "sandbox", sb.ID, "why", why)
		}
		if err := m.rt.RemovePooled(ctx, sb); err != nil && !errors.Is(err, docker.ErrClaimed) {
			m.log.Warn("removing a pooled sandbox", "sandbox", sb.ID, "err", err)
		}
	}
}

// Drain removes the ready sandboxes of the pool with key (every pool when
// key is ""), and, while Run is not running, every unclaimed pooled
// sandbox of those shapes in the engine that carries Options.Labels. It
// returns how many it removed. A running manager fills the pools again
// unless they were resized to 0 first.
func (m *Manager) Drain(ctx context.Context, key string) (int, error) {
	m.mu.Lock()
	var list []sandbox.Sandbox
	for k, s := range m.shapes {
		if key == "" || k == key {
			list = append(list, s.ready...)
			s.ready = nil
		}
	}
	m.mu.Unlock()
	if !m.running.Load() {
		pooled, err := m.listOurs(ctx, key)
		if err != nil {
			return 0, err
		}
		for _, p := range pooled {
			if !slices.ContainsFunc(list, func(sb sandbox.Sandbox) bool { return sb.ID == p.Sandbox.ID }) {
				list = append(list, p.Sandbox)
			}
		}
	}
	var errs []error
	n := 0
	for _, sb := range list {
		switch err := m.rt.RemovePooled(ctx, sb); {
		case err == nil:
			n++
		case errors.Is(err, docker.ErrClaimed):
			// a caller has it now: not the pool's to remove
		default:
			errs = append(errs, err)
		}
	}
	return n, errors.Join(errs...)
}
