package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/sandbox"
)

// stableStream is how long a stream must last for the back-off to start
// over at its minimum when it breaks.
const stableStream = 10 * time.Second

// watch follows the Docker event stream from since. When the stream
// breaks it waits (with back-off) and catches up before following a new
// one, so nothing is lost, even across an engine restart (which empties
// the engine's event buffer). It also re-lists when the reconciler asks.
func (m *Monitor) watch(ctx context.Context, since time.Time) {
	backoff := minBackoff
	resync := false
	for {
		var err error
		if resync {
			since, err = m.catchUp(ctx, since)
		}
		if err == nil {
			resync = false
			opened := m.opts.Now()
			sctx, cancel := context.WithCancel(ctx)
			res := m.opts.Engine.Events(sctx, client.EventsListOptions{Since: stamp(since), Filters: m.eventFilters()})
			err = m.follow(ctx, res, &since, m.resyncCh)
			cancel()
			if m.opts.Now().Sub(opened) > stableStream {
				backoff = minBackoff
			}
		}
		if ctx.Err() != nil {
			return
		}
		resync = true
		m.met.streamErrors.Inc()
		m.log.Warn("docker event stream broke; reconnecting", "err", err, "in", backoff, "since", since)
		if !sleep(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// catchUp applies the events the engine still has from since (the time
// of the last event applied) to now, with their own meaning (a kill before
// a die makes a stop, say), then re-lists the containers for whatever the
// engine no longer has. It returns the time the live stream starts from.
func (m *Monitor) catchUp(ctx context.Context, since time.Time) (time.Time, error) {
	until := m.opts.Now()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	res := m.opts.Engine.Events(sctx, client.EventsListOptions{Since: stamp(since), Until: stamp(until), Filters: m.eventFilters()})
	if err := m.follow(ctx, res, &since, nil); !errors.Is(err, io.EOF) {
		return since, fmt.Errorf("replay events: %w", err)
	}
	if err := m.relist(ctx); err != nil {
		return since, err
	}
	return until, nil
}

func (m *Monitor) eventFilters() client.Filters {
	return m.filters().Add("type", string(events.ContainerEventType))
}

// follow applies the events of one stream until it ends, and keeps since
// at the time of the last one. A signal on resync re-lists between two
// events.
func (m *Monitor) follow(ctx context.Context, res client.EventsResult, since *time.Time, resync <-chan struct{}) error {
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case msg, ok := <-res.Messages:
			if !ok {
				return errors.New("event stream closed")
			}
			m.handle(ctx, msg)
			if t := eventTime(msg); t.After(*since) {
				*since = t
			}
		case err, ok := <-res.Err:
			if !ok || err == nil {
				err = errors.New("event stream ended")
			}
			return fmt.Errorf("docker events: %w", err)
		case <-resync:
			if err := m.relist(ctx); err != nil {
				m.log.Warn("re-list for the reconciler", "err", err)
			}
		}
	}
}

// handle applies one container event to the view. Every change is
// idempotent: a stream reopened from the time of the last event replays it.
func (m *Monitor) handle(ctx context.Context, msg events.Message) {
	if msg.Type != events.ContainerEventType || !m.inScope(msg.Actor.Attributes) {
		return // never a container berth did not make
	}
	cid, id := msg.Actor.ID, msg.Actor.Attributes[sandbox.LabelID]
	at := eventTime(msg)
	switch msg.Action {
	case events.ActionCreate:
		if !m.known(id, cid) {
			m.adopt(ctx, cid, stateCreated)
		}
	case events.ActionStart, events.ActionPause, events.ActionUnPause:
		state := map[events.Action]string{
			events.ActionStart: stateRunning, events.ActionPause: statePaused, events.ActionUnPause: stateRunning,
		}[msg.Action]
		if !m.known(id, cid) {
			m.adopt(ctx, cid, "")
			return
		}
		m.mu.Lock()
		if e := m.byID[id]; e != nil {
			if typ, reason := m.transition(e, state, at); typ != "" {
				m.emitEntry(e, typ, reason)
			}
		}
		m.mu.Unlock()
	case events.ActionKill:
		m.mu.Lock()
		if e := m.byID[id]; e != nil && e.sb.ContainerID == cid {
			e.killed = true
		}
		m.mu.Unlock()
	case events.ActionOOM:
		m.mu.Lock()
		if e := m.byID[id]; e != nil && e.sb.ContainerID == cid && !e.sb.OOMKilled {
			e.sb.OOMKilled = true
			m.emitEntry(e, EventOOM, "the kernel killed a process for lack of memory")
		}
		m.mu.Unlock()
	case events.ActionDie, events.ActionStop:
		m.exited(ctx, msg, cid, id, at)
	case events.ActionDestroy:
		m.mu.Lock()
		if e := m.byID[id]; e != nil && e.sb.ContainerID == cid {
			m.drop(e)
			m.emitEntry(e, EventRemoved, "")
		}
		m.mu.Unlock()
	case events.ActionRename:
		m.refresh(ctx, cid, id)
	}
}

// exited applies a die (or a stop whose die was missed). It inspects the
// container to tell a removal (rm -f kills first) from a stop, and for the
// exit code, OOMKilled and Docker's error.
func (m *Monitor) exited(ctx context.Context, msg events.Message, cid, id string, at time.Time) {
	m.mu.Lock()
	e := m.byID[id]
	known := e != nil && e.sb.ContainerID == cid
	done := known && (e.sb.State == stateExited || e.sb.State == stateDead || e.sb.State == stateRemoving)
	m.mu.Unlock()
	if !known {
		m.adopt(ctx, cid, "")
		return
	}
	if done {
		return // the stop after a die, or a replay
	}
	res, err := m.opts.Engine.ContainerInspect(ctx, cid, client.ContainerInspectOptions{})
	removing := cerrdefs.IsNotFound(err)
	if err != nil && !removing {
		m.log.Warn("inspect exited container", "sandbox", id, "err", err)
	}
	st := res.Container.State
	m.mu.Lock()
	defer m.mu.Unlock()
	if e = m.byID[id]; e == nil || e.sb.ContainerID != cid {
		return
	}
	if removing || st != nil && string(st.Status) == stateRemoving {
		m.transition(e, stateRemoving, at) // destroy follows: that is the event
		return
	}
	state := stateExited
	if st != nil {
		e.sb.ExitCode, e.sb.Error = st.ExitCode, st.Error
		e.sb.OOMKilled = e.sb.OOMKilled || st.OOMKilled
		if string(st.Status) == stateDead {
			state = stateDead
		}
	}
	if code, err := strconv.Atoi(msg.Actor.Attributes["exitCode"]); err == nil {
		e.sb.ExitCode = code // the code of this die, even if it has restarted since
	}
	if msg.Action == events.ActionStop {
		e.killed = true
	}
	if typ, reason := m.transition(e, state, at); typ != "" {
		m.emitEntry(e, typ, reason)
	}
}

// known reports whether the view has container cid as sandbox id.
func (m *Monitor) known(id, cid string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	e := m.byID[id]
	return e != nil && e.sb.ContainerID == cid
}

// adopt inspects a container the view lacks, adds it and publishes
// EventCreated. A non-empty state overrides the inspected one (the event
// says where the container was; the events after it bring it to where it
// is).
func (m *Monitor) adopt(ctx context.Context, cid, state string) {
	res, err := m.opts.Engine.ContainerInspect(ctx, cid, client.ContainerInspectOptions{})
	if err != nil {
		if !cerrdefs.IsNotFound(err) && ctx.Err() == nil {
			m.log.Warn("inspect new container", "container", cid, "err", err)
		}
		return // gone already: its destroy event follows, or went by
	}
	var labels map[string]string
	if res.Container.Config != nil {
		labels = res.Container.Config.Labels
	}
	if !m.inScope(labels) {
		return
	}
	rec := m.opts.Records.FromInspect(res.Container)
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.byID[rec.ID]; e != nil {
		if e.sb.ContainerID == cid {
			return
		}
		m.drop(e)
	}
	if state != "" {
		rec.State = state
	}
	e := m.add(rec, now, startedAt(res.Container.State))
	e.enriched = true
	m.emitEntry(e, EventCreated, "")
}

// refresh re-reads a known container's record (after a rename), keeping
// the monitor's own state.
func (m *Monitor) refresh(ctx context.Context, cid, id string) {
	res, err := m.opts.Engine.ContainerInspect(ctx, cid, client.ContainerInspectOptions{})
	if err != nil {
		return
	}
	rec := m.opts.Records.FromInspect(res.Container)
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.byID[id]; e != nil && e.sb.ContainerID == cid {
		// A rename is how a pooled sandbox's claim shows: its owner, name,
		// labels, security policy and creation time are the claimer's from
		// then on.
		e.sb.Name, e.sb.Labels, e.sb.Owner, e.sb.CreatedAt = rec.Name, rec.Labels, rec.Owner, rec.CreatedAt
		e.sb.SecurityPolicy = rec.SecurityPolicy
		m.complete(e, rec)
	}
}

// eventTime is when an event happened, by the engine's clock.
func eventTime(msg events.Message) time.Time {
	if msg.TimeNano != 0 {
		return time.Unix(0, msg.TimeNano)
	}
	return time.Unix(msg.Time, 0)
}

// stamp formats t as the events API's since parameter.
func stamp(t time.Time) string {
	return fmt.Sprintf("%d.%09d", t.Unix(), t.Nanosecond())
}
