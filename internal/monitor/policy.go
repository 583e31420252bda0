package monitor

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/sandbox"
)

// Policy names, as berth_policy_actions_total's policy label has them.
const (
	policyMaxRunning = "max_running"
	policyIdle       = "idle"
	policyTTL        = "ttl"
	policyReconcile  = "reconcile"
)

// policyRetry is how long a sandbox whose policy action failed is left
// alone before the policy tries again.
const policyRetry = 30 * time.Second

// policyLoop applies the lifecycle policies. It computes the next deadline
// (idle, TTL, retry) over the view and sleeps on a timer until then, or
// until the view changes, so an action fires when its deadline passes, not
// at the next tick of a poll.
func (m *Monitor) policyLoop(ctx context.Context) {
	p := m.opts.Policy
	if p.MaxRunning == 0 && p.IdleTimeout == 0 && p.TTL == 0 {
		return
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Stop()
		if next := m.applyPolicies(ctx, &wg); !next.IsZero() {
			timer.Reset(next.Sub(m.opts.Now()))
		}
		select {
		case <-ctx.Done():
			return
		case <-m.wake:
		case <-timer.C:
		}
	}
}

// applyPolicies starts the actions that are due and returns the next
// deadline (zero if none).
func (m *Monitor) applyPolicies(ctx context.Context, wg *sync.WaitGroup) time.Time {
	p := m.opts.Policy
	now := m.opts.Now()
	var next time.Time
	soon := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var running, candidates []*entry
	for _, e := range m.byID {
		if e.sb.Owner == "" || e.sb.Owner == sandbox.OwnerPool || e.acting {
			continue // not berth's to manage, waiting in a pool, or being acted on
		}
		wait := now.Before(e.retryAt)
		if wait {
			soon(e.retryAt)
		}
		if e.sb.State == stateRunning {
			running = append(running, e)
		}
		if wait {
			continue
		}
		if p.TTL > 0 {
			if d := e.sb.CreatedAt.Add(p.TTL); now.Before(d) {
				soon(d)
			} else {
				m.act(ctx, wg, e, policyTTL, "remove", fmt.Sprintf("ttl %s: removed", p.TTL))
				continue
			}
		}
		if p.IdleTimeout > 0 && idleSubject(e.sb.State, p.IdleAction) {
			if d := e.active.Add(p.IdleTimeout); now.Before(d) {
				soon(d)
			} else {
				m.act(ctx, wg, e, policyIdle, p.IdleAction, fmt.Sprintf("idle %s: %s", p.IdleTimeout, pastTense(p.IdleAction)))
				continue
			}
		}
		if e.sb.State == stateRunning {
			candidates = append(candidates, e)
		}
	}
	// Running sandboxes an action above just took are no longer counted.
	running = slices.DeleteFunc(running, func(e *entry) bool { return e.acting })
	if excess := len(running) - p.MaxRunning; p.MaxRunning > 0 && excess > 0 {
		slices.SortFunc(candidates, func(a, b *entry) int {
			return cmp.Or(a.runningSince.Compare(b.runningSince), a.sb.CreatedAt.Compare(b.sb.CreatedAt), strings.Compare(a.sb.ID, b.sb.ID))
		})
		for _, e := range candidates[:min(excess, len(candidates))] {
			m.act(ctx, wg, e, policyMaxRunning, "pause", fmt.Sprintf("max running %d: paused", p.MaxRunning))
		}
	}
	return next
}

func idleSubject(state, action string) bool {
	return state == stateRunning || action == IdleActionStop && state == statePaused
}

func pastTense(action string) string {
	switch action {
	case "pause":
		return "paused"
	case "stop":
		return "stopped"
	case "remove":
		return "removed"
	}
	return action
}

// act runs a policy's action on e through the runtime, in the background;
// EventPolicy follows its success. A failed action is retried after
// policyRetry. The caller holds mu.
func (m *Monitor) act(ctx context.Context, wg *sync.WaitGroup, e *entry, policy, action, reason string) {
	e.acting = true
	id := e.sb.ID
	m.log.Info("policy acts", "sandbox", id, "owner", e.sb.Owner, "policy", policy, "action", action, "reason", reason)
	wg.Go(func() {
		var rec sandbox.Sandbox
		var err error
		switch action {
		case "pause":
			rec, err = m.opts.Runtime.Pause(ctx, id)
		case "stop":
			rec, err = m.opts.Runtime.Stop(ctx, id)
		case "remove":
			err = m.opts.Runtime.Remove(ctx, id)
		}
		m.mu.Lock()
		defer m.mu.Unlock()
		e.acting = false
		m.poke()
		if err != nil {
			if ctx.Err() == nil {
				e.retryAt = m.opts.Now().Add(policyRetry)
				m.log.Warn("policy action failed", "sandbox", id, "policy", policy, "action", action, "err", err, "retry_in", policyRetry)
			}
			return
		}
		m.met.actions.WithLabelValues(policy, action).Inc()
		// Apply the outcome now rather than when its Docker event comes,
		// so the next pass does not count this sandbox as still running.
		if cur := m.byID[id]; cur == e {
			if action == "remove" {
				m.drop(e)
				m.emitEntry(e, EventRemoved, "")
			} else if rec.State != "" {
				if action == "stop" {
					e.killed = true
					e.sb.ExitCode = rec.ExitCode
				}
				if typ, why := m.transition(e, rec.State, m.opts.Now()); typ != "" {
					m.emitEntry(e, typ, why)
				}
			}
		}
		m.emitEntry(e, EventPolicy, reason)
	})
}
