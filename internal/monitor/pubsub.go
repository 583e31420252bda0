package monitor

import (
	"context"
	"maps"
	"slices"
)

// subscriber is one Subscribe call's channel.
type subscriber struct {
	ch   chan Event
	stop func() bool // stops the context.AfterFunc that unsubscribes
}

// Subscribe returns a channel of every Event published from now on, in
// the order the view changed. It is closed when ctx ends, or when the
// subscriber falls behind: the monitor never blocks on a subscriber, and
// one whose buffer (Options.SubscriberBuffer) is full when an event comes
// is dropped, its channel closed, and berth_event_subscribers_dropped_total
// counts it. A consumer that sees the channel close before its ctx ended
// has missed events: it re-reads the view (List) and subscribes again.
func (m *Monitor) Subscribe(ctx context.Context) <-chan Event {
	s := &subscriber{ch: make(chan Event, m.opts.SubscriberBuffer)}
	m.subMu.Lock()
	defer m.subMu.Unlock()
	// Under subMu: a ctx that is already done runs the func at once, in
	// its own goroutine, which waits for the subscriber to be added.
	s.stop = context.AfterFunc(ctx, func() {
		m.subMu.Lock()
		defer m.subMu.Unlock()
		m.unsubscribe(s)
	})
	m.subs[s] = struct{}{}
	return s.ch
}

// unsubscribe closes s's channel once. The caller holds subMu.
func (m *Monitor) unsubscribe(s *subscriber) {
	if _, ok := m.subs[s]; ok {
		delete(m.subs, s)
		close(s.ch)
	}
}

// Publish sends e to every subscriber and counts it. Events about a
// sandbox of the view get its Owner and record (Sandbox) when they lack
// them, and a Time. The server publishes EventReady (and anything else it
// learns first) with it; the monitor publishes the rest itself. An
// EventReady that carries the runtime's record (as Create and Resume
// return it) also updates how the view reaches the agent: the record the
// monitor built when the container appeared predates the agent's socket.
func (m *Monitor) Publish(e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := e.Sandbox; e.Type == EventReady && r != nil && r.ID == e.ID && m.byID[e.ID] == nil && r.State == stateRunning {
		// The create (or resume) finished before Docker's events reached the
		// view: the server's record is the newest truth.
		now := m.opts.Now()
		m.add(*r, now, now)
	}
	if ent := m.byID[e.ID]; ent != nil {
		if r := e.Sandbox; e.Type == EventReady && r != nil && r.ContainerID == ent.sb.ContainerID && r.State == stateRunning && ent.sb.State != stateRunning {
			// Ready means running: do not serve STARTING until the start
			// event arrives.
			if typ, reason := m.transition(ent, stateRunning, m.opts.Now()); typ != "" {
				m.emitEntry(ent, typ, reason) // e.g. resumed: the engine's event will find nothing left to change
			}
		}
		if r := e.Sandbox; e.Type == EventReady && r != nil && r.ContainerID == ent.sb.ContainerID && r.AgentURL != "" {
			ent.sb.AgentURL, ent.sb.URLs, ent.sb.Ports = r.AgentURL, maps.Clone(r.URLs), slices.Clone(r.Ports)
			if r.Key != "" {
				ent.sb.Key = r.Key
			}
		}
		if e.Owner == "" {
			e.Owner = ent.sb.Owner
		}
		if e.Sandbox == nil {
			sb := clone(ent.sb)
			e.Sandbox = &sb
		}
	}
	m.emit(e)
}

// emitEntry publishes an event about e with its current record. The
// caller holds mu, so events go out in the order the view changed.
func (m *Monitor) emitEntry(e *entry, typ, reason string) {
	sb := clone(e.sb)
	m.emit(Event{Type: typ, ID: sb.ID, Owner: sb.Owner, Reason: reason, Sandbox: &sb})
}

// emit fans e out without ever blocking. The caller holds mu.
func (m *Monitor) emit(e Event) {
	if e.Time.IsZero() {
		e.Time = m.opts.Now()
	}
	m.met.events.WithLabelValues(e.Type).Inc()
	m.subMu.Lock()
	defer m.subMu.Unlock()
	for s := range m.subs {
		select {
		case s.ch <- e:
		default:
			s.stop()
			m.unsubscribe(s)
			m.met.dropped.Inc()
			m.log.Warn("event subscriber fell behind; dropped", "buffer", cap(s.ch))
		}
	}
}
