package monitor

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/sandbox"
)

// Docker container states the monitor reasons about.
const (
	stateCreated  = string(container.StateCreated)
	stateRunning  = string(container.StateRunning)
	statePaused   = string(container.StatePaused)
	stateExited   = string(container.StateExited)
	stateDead     = string(container.StateDead)
	stateRemoving = string(container.StateRemoving)
)

// Back-off between attempts to reach the engine (first list, event stream).
const (
	minBackoff = 100 * time.Millisecond
	maxBackoff = 5 * time.Second
	// enrichWorkers bounds the inspects that fill in what a list lacks.
	enrichWorkers = 4
)

// Monitor is berth serve's live view of the sandboxes. Its methods are safe
// for concurrent use; Run must be called once.
type Monitor struct {
	opts Options
	log  *slog.Logger
	met  *metrics

	synced   chan struct{} // closed after the first list
	wake     chan struct{} // pokes the policy loop: the view changed
	resyncCh chan struct{} // asks the event loop to re-list
	enrichCh chan struct{} // asks the enricher to inspect new entries
	started  atomic.Bool
	unixHC   *http.Client // health checks of agents behind a unix socket

	mu   sync.Mutex
	byID map[string]*entry // by sandbox id (label berth.id)

	subMu sync.Mutex
	subs  map[*subscriber]struct{}
}

// entry is one sandbox of the view and what the monitor knows about it
// beyond its record.
type entry struct {
	sb           sandbox.Sandbox // as served: Status includes the health verdict
	startedAt    time.Time       // the container's last start (health grace)
	runningSince time.Time       // when it last became running (MaxRunning order)
	active       time.Time       // last activity, for the idle policy
	killed       bool            // a kill since the last start: the next die is a stop
	gen          uint64          // bumped on each state change; stale check results are dropped
	failures     int             // consecutive failed health checks
	unhealthy    string          // reason while the health check fails ("" = healthy)
	checking     bool            // a health check is in flight
	acting       bool            // a policy action is in flight
	retryAt      time.Time       // a failed policy action is retried from then
	enriched     bool            // built from (or completed by) an inspect: Key is known
	answered     bool            // the agent passed a health check since the last start
	changedAt    time.Time       // when the view last added it or changed its state
}

// listLag is how long after a change the view trusts it over a container
// list: the engine serves lists from a copy of its state that can lag its
// events (a list taken just after an unpause may still say paused).
const listLag = 2 * time.Second

// settle recomputes Status and Reason from the Docker state and the health
// verdict.
func (e *entry) settle() {
	e.sb.Status = sandbox.StatusFromState(e.sb.State)
	e.sb.Reason = ""
	if e.unhealthy != "" && e.sb.State == stateRunning {
		e.sb.Status = sandbox.StatusError
		e.sb.Reason = e.unhealthy
	}
}

// New returns a Monitor; it does nothing until Run.
func New(opts Options) (*Monitor, error) {
	if err := opts.setDefaults(); err != nil {
		return nil, err
	}
	m := &Monitor{
		opts:     opts,
		log:      opts.Logger.With("component", "monitor"),
		synced:   make(chan struct{}),
		wake:     make(chan struct{}, 1),
		resyncCh: make(chan struct{}, 1),
		enrichCh: make(chan struct{}, 1),
		unixHC:   unixClient(),
		byID:     map[string]*entry{},
		subs:     map[*subscriber]struct{}{},
	}
	m.met = newMetrics(m)
	if opts.Registerer != nil {
		if err := m.met.register(opts.Registerer); err != nil {
			return nil, fmt.Errorf("monitor: register metrics: %w", err)
		}
	}
	return m, nil
}

// Run builds the view from one container list, closes Synced, then keeps
// the view current from the Docker event stream and runs the health checks,
// the policies and the reconciler. It blocks until ctx ends and then
// returns nil, once every goroutine it started has finished. An engine that
// does not answer is retried with back-off (Synced stays open meanwhile).
func (m *Monitor) Run(ctx context.Context) error {
	if !m.started.CompareAndSwap(false, true) {
		return errors.New("monitor: Run called twice")
	}
	since, err := m.firstSync(ctx)
	if err != nil {
		return nil // ctx ended before the engine answered
	}
	close(m.synced)
	var wg sync.WaitGroup
	for _, loop := range []func(context.Context){
		func(ctx context.Context) { m.watch(ctx, since) },
		m.enrichLoop,
		m.healthLoop,
		m.policyLoop,
		m.reconcileLoop,
	} {
		wg.Go(func() { loop(ctx) })
	}
	wg.Wait()
	return nil
}

// Synced is closed once the view has been built from the container list.
func (m *Monitor) Synced() <-chan struct{} { return m.synced }

// Get returns the sandbox ref names: its id, else its name, else a unique
// prefix of its id. Key may be empty for a few moments after a restart of
// the server (see Options): callers that need it then ask the runtime.
func (m *Monitor) Get(ref string) (sandbox.Sandbox, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.lookup(ref); e != nil {
		return clone(e.sb), true
	}
	return sandbox.Sandbox{}, false
}

func (m *Monitor) lookup(ref string) *entry {
	if ref == "" {
		return nil
	}
	if e := m.byID[ref]; e != nil {
		return e
	}
	var found *entry
	n := 0
	for id, e := range m.byID {
		if e.sb.Name == ref {
			return e
		}
		if strings.HasPrefix(id, ref) {
			found = e
			n++
		}
	}
	if n == 1 {
		return found
	}
	return nil
}

// List returns the sandboxes f selects, newest first.
func (m *Monitor) List(f Filter) []sandbox.Sandbox {
	m.mu.Lock()
	out := make([]sandbox.Sandbox, 0, len(m.byID))
	for _, e := range m.byID {
		if e.sb.Owner == sandbox.OwnerPool && f.Owner != sandbox.OwnerPool {
			continue // a warm pool's, until a create claims it
		}
		if f.matches(e.sb) {
			out = append(out, clone(e.sb))
		}
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b sandbox.Sandbox) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), strings.Compare(a.ID, b.ID))
	})
	return out
}

func (f Filter) matches(sb sandbox.Sandbox) bool {
	if f.Owner != "" && sb.Owner != f.Owner || f.Status != "" && sb.Status != f.Status {
		return false
	}
	for k, v := range f.Label {
		if got, ok := sb.Labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Forget takes sandbox id out of the view at once, with its "removed"
// event, when the caller has removed it: Docker's destroy event, which
// would do the same, may come a moment later, and until then a read of
// the sandbox would find it still there. Unknown ids are ignored.
func (m *Monitor) Forget(id string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.byID[id]; e != nil {
		m.drop(e)
		m.emitEntry(e, EventRemoved, "")
	}
}

// Touch records API activity on sandbox id (its id, name or unique id
// prefix): the idle policy counts from the last one. Unknown ids are
// ignored.
func (m *Monitor) Touch(id string) {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	if e := m.lookup(id); e != nil && now.After(e.active) {
		e.active = now
	}
}

// clone copies a record so callers cannot change the view through its maps.
func clone(sb sandbox.Sandbox) sandbox.Sandbox {
	sb.Ports = slices.Clone(sb.Ports)
	sb.URLs = maps.Clone(sb.URLs)
	sb.Labels = maps.Clone(sb.Labels)
	return sb
}

// poke wakes the policy loop; callers hold mu or not, it never blocks.
func (m *Monitor) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// filters selects berth's containers (in Scope).
func (m *Monitor) filters() client.Filters {
	f := make(client.Filters).Add("label", sandbox.LabelID)
	for k, v := range m.opts.Scope {
		f.Add("label", k+"="+v)
	}
	return f
}

// inScope reports whether labels make a container part of the view.
func (m *Monitor) inScope(labels map[string]string) bool {
	if labels[sandbox.LabelID] == "" {
		return false
	}
	for k, v := range m.opts.Scope {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// list lists berth's containers in every state.
func (m *Monitor) list(ctx context.Context) ([]container.Summary, error) {
	res, err := m.opts.Engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: m.filters()})
	if err != nil {
		return nil, fmt.Errorf("list berth containers: %w", err)
	}
	return res.Items, nil
}

// firstSync lists until the engine answers and builds the view. It returns
// the time taken just before the list, from which the event stream starts
// (so nothing between the list and the stream is lost).
func (m *Monitor) firstSync(ctx context.Context) (time.Time, error) {
	backoff := minBackoff
	for {
		since := m.opts.Now()
		items, err := m.list(ctx)
		if err == nil {
			m.applyList(items, false)
			m.log.Info("view synced", "sandboxes", len(items), "took", m.opts.Now().Sub(since))
			return since, nil
		}
		m.log.Warn("cannot list containers; retrying", "err", err, "in", backoff)
		if !sleep(ctx, backoff) {
			return time.Time{}, ctx.Err()
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// relist re-reads the containers and brings the view in line, publishing
// what changed. Only the event loop calls it, between two events.
func (m *Monitor) relist(ctx context.Context) error {
	items, err := m.list(ctx)
	if err != nil {
		return err
	}
	m.applyList(items, true)
	return nil
}

// applyList makes the view match a container list. publish says whether
// the differences are events (not on the first sync).
func (m *Monitor) applyList(items []container.Summary, publish bool) {
	now := m.opts.Now()
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[string]bool, len(items))
	added := false
	for _, c := range items {
		if !m.inScope(c.Labels) {
			continue
		}
		rec := m.opts.Records.FromSummary(c)
		seen[rec.ID] = true
		e := m.byID[rec.ID]
		if e == nil || e.sb.ContainerID != c.ID {
			e = m.add(rec, now, time.Time{})
			added = true
			if publish {
				m.emitEntry(e, EventCreated, "")
			}
			continue
		}
		// Known: the list is newer on the state, unless the view changed
		// it a moment ago (a re-list only repairs missed events); the rest
		// of the record (from an inspect, maybe) stays.
		if publish && now.Sub(e.changedAt) < listLag {
			continue
		}
		if rec.State == stateExited && e.sb.State != stateExited {
			e.sb.ExitCode = rec.ExitCode
		}
		if typ, reason := m.transition(e, rec.State, now); typ != "" && publish {
			m.emitEntry(e, typ, reason)
		}
	}
	for id, e := range m.byID {
		if !seen[id] && !(publish && now.Sub(e.changedAt) < listLag) {
			m.drop(e)
			if publish {
				m.emitEntry(e, EventRemoved, "")
			}
		}
	}
	if added {
		signal(m.enrichCh)
	}
	m.poke()
}

// add puts a record into the view. startedAt is the container's last start
// when known. The caller holds mu.
func (m *Monitor) add(rec sandbox.Sandbox, now, startedAt time.Time) *entry {
	if startedAt.IsZero() {
		startedAt = rec.CreatedAt
	}
	e := &entry{sb: rec, startedAt: startedAt, runningSince: startedAt, active: now, changedAt: m.opts.Now()}
	e.settle()
	m.byID[rec.ID] = e
	m.poke()
	return e
}

// drop takes e out of the view. The caller holds mu.
func (m *Monitor) drop(e *entry) {
	delete(m.byID, e.sb.ID)
	e.sb.State = stateRemoving
	e.gen++
	e.settle()
}

// transition moves e to Docker state state (seen at time at) and returns the
// event that the change is, if any. The caller holds mu, has set the exit
// code, OOMKilled and Error of an exit, and publishes the event.
func (m *Monitor) transition(e *entry, state string, at time.Time) (typ, reason string) {
	prev := e.sb.State
	if state == prev {
		return "", ""
	}
	e.sb.State = state
	e.gen++
	e.changedAt = m.opts.Now()
	e.failures = 0
	e.unhealthy = ""
	m.poke()
	switch state {
	case stateRunning:
		e.runningSince = at
		if at.After(e.active) {
			e.active = at
		}
		if prev != statePaused { // a start, not a thaw
			e.startedAt = at
			e.killed = false
			e.answered = false
			e.sb.ExitCode, e.sb.OOMKilled, e.sb.Error = 0, false, ""
		}
		if prev == statePaused || prev == stateExited || prev == stateDead {
			typ = EventResumed
		}
	case statePaused:
		typ = EventPaused
	case stateExited:
		switch {
		case e.sb.OOMKilled:
			typ, reason = EventError, fmt.Sprintf("killed for lack of memory (exit code %d)", e.sb.ExitCode)
		case e.sb.ExitCode == 0 || e.killed:
			typ, reason = EventStopped, fmt.Sprintf("exit code %d", e.sb.ExitCode)
		default:
			typ, reason = EventError, fmt.Sprintf("container exited with code %d", e.sb.ExitCode)
		}
	case stateDead:
		typ, reason = EventError, "container is dead"
		if e.sb.Error != "" {
			reason += ": " + e.sb.Error
		}
	}
	e.settle()
	return typ, reason
}

// enrichLoop inspects the entries a list made (their Key, OOMKilled,
// Error and start time are not in a list), a few at a time, off the sync
// path.
func (m *Monitor) enrichLoop(ctx context.Context) {
	signal(m.enrichCh)
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.enrichCh:
			m.enrich(ctx)
		}
	}
}

func (m *Monitor) enrich(ctx context.Context) {
	type job struct {
		id, cid string
		gen     uint64
	}
	m.mu.Lock()
	var jobs []job
	for _, e := range m.byID {
		if !e.enriched {
			jobs = append(jobs, job{e.sb.ID, e.sb.ContainerID, e.gen})
		}
	}
	m.mu.Unlock()
	sem := make(chan struct{}, enrichWorkers)
	var wg sync.WaitGroup
	for _, j := range jobs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			res, err := m.opts.Engine.ContainerInspect(ctx, j.cid, client.ContainerInspectOptions{})
			if err != nil {
				if !cerrdefs.IsNotFound(err) && ctx.Err() == nil {
					m.log.Warn("inspect container", "sandbox", j.id, "container", j.cid, "err", err)
				}
				return
			}
			rec := m.opts.Records.FromInspect(res.Container)
			m.mu.Lock()
			defer m.mu.Unlock()
			e := m.byID[j.id]
			if e == nil || e.sb.ContainerID != j.cid {
				return
			}
			m.complete(e, rec)
			if e.gen == j.gen && rec.State == e.sb.State {
				e.sb.ExitCode, e.sb.OOMKilled, e.sb.Error = rec.ExitCode, rec.OOMKilled, rec.Error
				// A list has no start time: the created time stood in. Never
				// move one back (a thaw after the start is later still).
				if t := startedAt(res.Container.State); e.sb.State == stateRunning && t.After(e.startedAt) {
					e.startedAt = t
					if t.After(e.runningSince) {
						e.runningSince = t
					}
					m.poke()
				}
			}
		})
	}
	wg.Wait()
}

// complete fills in e what only an inspect tells: the key, and the ports
// as published (a stopped container's list entry has no bind address).
// The caller holds mu.
func (m *Monitor) complete(e *entry, rec sandbox.Sandbox) {
	e.enriched = true
	e.sb.Key = rec.Key
	e.sb.Ports, e.sb.URLs, e.sb.AgentURL = rec.Ports, rec.URLs, rec.AgentURL
}

func startedAt(s *container.State) time.Time {
	if s == nil {
		return time.Time{}
	}
	t, err := time.Parse(time.RFC3339Nano, s.StartedAt)
	if err != nil || t.IsZero() { // "0001-01-01T00:00:00Z": never started
		return time.Time{}
	}
	return t
}

// sleep waits d or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
