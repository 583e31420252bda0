package monitor

import (
	"context"
	"fmt"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/sandbox"
)

// reconcileLoop runs the reconciler once the view is synced, then every
// ReconcileInterval.
func (m *Monitor) reconcileLoop(ctx context.Context) {
	if m.opts.ReconcileInterval < 0 {
		return
	}
	tick := time.NewTicker(m.opts.ReconcileInterval)
	defer tick.Stop()
	for first := true; ; first = false {
		m.reconcile(ctx, !first)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// reconcile asks the event loop to re-list if resync (correcting the view
// if the stream missed anything), removes berth containers whose create never
// finished, and lets ReleaseOrphans free what sandboxes that are gone
// still hold. It only ever acts on containers with the berth.id label.
func (m *Monitor) reconcile(ctx context.Context, resync bool) {
	if resync {
		signal(m.resyncCh)
	}
	// Every berth container, whatever the Scope: ReleaseOrphans must not
	// take what a sandbox outside the scope holds.
	res, err := m.opts.Engine.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", sandbox.LabelID),
	})
	if err != nil {
		if ctx.Err() == nil {
			m.log.Warn("reconcile: list containers", "err", err)
		}
		return
	}
	now := m.opts.Now()
	live := make(map[string]bool, len(res.Items))
	for _, c := range res.Items {
		id := c.Labels[sandbox.LabelID]
		if id == "" {
			continue // the filter makes this impossible; never act without the label
		}
		live[id] = true
		age := now.Sub(time.Unix(c.Created, 0))
		if string(c.State) != stateCreated || age <= m.opts.CreateGrace || !m.inScope(c.Labels) {
			continue
		}
		if err := m.opts.Runtime.Remove(ctx, id); err != nil {
			if ctx.Err() == nil {
				m.log.Warn("reconcile: remove container of an unfinished create", "sandbox", id, "container", c.ID, "err", err)
			}
			continue
		}
		delete(live, id)
		m.met.actions.WithLabelValues(policyReconcile, "remove").Inc()
		reason := fmt.Sprintf("create never finished (created %s ago): removed", age.Round(time.Second))
		m.log.Info("reconcile", "sandbox", id, "reason", reason)
		m.Publish(Event{Type: EventPolicy, ID: id, Owner: c.Labels[sandbox.LabelOwner], Reason: reason})
	}
	if m.opts.ReleaseOrphans != nil {
		if err := m.opts.ReleaseOrphans(ctx, live); err != nil && ctx.Err() == nil {
			m.log.Warn("reconcile: release what gone sandboxes held", "err", err)
		}
	}
}
