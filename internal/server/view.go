package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/sandbox"
)

// RuntimeView is a View that asks the runtime on every read: no event
// stream, no health checks. It stands in until the monitor is wired, and
// serves tests. Events are those published to it: the server's, and the
// ones its Runtime wrapper publishes after each action it performs.
type RuntimeView struct {
	rt      sandbox.Runtime
	log     *slog.Logger
	timeout time.Duration

	mu   sync.Mutex
	subs map[chan monitor.Event]struct{}
}

// subscriberBuffer is how many events a slow subscriber may lag behind
// before it misses some.
const subscriberBuffer = 256

// NewRuntimeView returns a view over rt.
func NewRuntimeView(rt sandbox.Runtime, log *slog.Logger) *RuntimeView {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &RuntimeView{rt: rt, log: log, timeout: 30 * time.Second, subs: map[chan monitor.Event]struct{}{}}
}

// List asks the runtime for every sandbox that matches f, newest first.
func (v *RuntimeView) List(f monitor.Filter) []sandbox.Sandbox {
	ctx, cancel := context.WithTimeout(context.Background(), v.timeout)
	defer cancel()
	list, err := v.rt.List(ctx, sandbox.ListOptions{All: true, Owner: f.Owner, Label: f.Label})
	if err != nil {
		v.log.Warn("view: list sandboxes", "err", err)
		return nil
	}
	if f.Status == "" {
		return list
	}
	out := list[:0]
	for _, sb := range list {
		if sb.Status == f.Status {
			out = append(out, sb)
		}
	}
	return out
}

// Get asks the runtime for the sandbox id.
func (v *RuntimeView) Get(id string) (sandbox.Sandbox, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), v.timeout)
	defer cancel()
	sb, err := v.rt.Get(ctx, id)
	if err != nil {
		return sandbox.Sandbox{}, false
	}
	return sb, true
}

// Subscribe returns the events published from now on, until ctx ends.
func (v *RuntimeView) Subscribe(ctx context.Context) <-chan monitor.Event {
	ch := make(chan monitor.Event, subscriberBuffer)
	v.mu.Lock()
	v.subs[ch] = struct{}{}
	v.mu.Unlock()
	context.AfterFunc(ctx, func() {
		v.mu.Lock()
		delete(v.subs, ch)
		close(ch)
		v.mu.Unlock()
	})
	return ch
}

// Publish hands e to every subscriber; one that lags too far misses it.
func (v *RuntimeView) Publish(e monitor.Event) {
	if e.Time.IsZero() {
		e.Time = time.Now().UTC()
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for ch := range v.subs {
		select {
		case ch <- e:
		default:
			v.log.Warn("view: a slow subscriber missed an event", "type", e.Type, "id", e.ID)
		}
	}
}

// Touch does nothing: this view has no idle policy.
func (v *RuntimeView) Touch(string) {}

// Runtime returns rt wrapped so that every action it performs is
// published as an event (created, paused, resumed, stopped, removed), as
// the monitor would from Docker's events.
func (v *RuntimeView) Runtime() sandbox.Runtime { return &publishingRuntime{Runtime: v.rt, view: v} }

type publishingRuntime struct {
	sandbox.Runtime
	view *RuntimeView
}

func (p *publishingRuntime) publish(typ string, sb sandbox.Sandbox) {
	p.view.Publish(monitor.Event{Type: typ, ID: sb.ID, Owner: sb.Owner, Time: time.Now().UTC(), Sandbox: &sb})
}

func (p *publishingRuntime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	sb, err := p.Runtime.Create(ctx, spec)
	if err == nil {
		p.publish(monitor.EventCreated, sb)
	}
	return sb, err
}

func (p *publishingRuntime) Pause(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	sb, err := p.Runtime.Pause(ctx, ref)
	if err == nil {
		p.publish(monitor.EventPaused, sb)
	}
	return sb, err
}

func (p *publishingRuntime) Resume(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	sb, err := p.Runtime.Resume(ctx, ref)
	if err == nil {
		p.publish(monitor.EventResumed, sb)
	}
	return sb, err
}

func (p *publishingRuntime) Stop(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	sb, err := p.Runtime.Stop(ctx, ref)
	if err == nil {
		p.publish(monitor.EventStopped, sb)
	}
	return sb, err
}

func (p *publishingRuntime) Remove(ctx context.Context, ref string) error {
	sb, gerr := p.Runtime.Get(ctx, ref)
	err := p.Runtime.Remove(ctx, ref)
	if err == nil && gerr == nil {
		p.publish(monitor.EventRemoved, sb)
	}
	return err
}
