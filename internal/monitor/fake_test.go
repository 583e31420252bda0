package monitor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/sandbox"
)

// fakeEngine is a Docker engine in memory: containers, a list that honours
// label filters, inspect, and an event stream with Docker's replay of
// events since a time. Tests change containers through its methods, which
// emit the events Docker would.
type fakeEngine struct {
	mu       sync.Mutex
	cs       map[string]*fakeContainer // by container id
	log      []events.Message          // every event, for since replays
	streams  []*fakeStream
	lists    int
	inspects int
	sinces   []string
	untils   []string
	listErr  error
	opened   chan struct{} // receives once per Events call
	seq      int
}

type fakeContainer struct {
	id, name  string
	labels    map[string]string
	state     string
	created   time.Time
	startedAt time.Time
	exit      int
	oom       bool
	removing  bool
}

type fakeStream struct {
	ctx    context.Context
	msgs   chan events.Message
	errs   chan error
	mu     sync.Mutex
	queue  []events.Message
	notify chan struct{}
	broken bool
	eof    bool // end with io.EOF once the queue is sent
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{cs: map[string]*fakeContainer{}, opened: make(chan struct{}, 100)}
}

// labels are a berth sandbox's labels (berth.id, owner, ports).
func berthLabels(id, owner string) map[string]string {
	return map[string]string{
		sandbox.LabelID:    id,
		sandbox.LabelOwner: owner,
		sandbox.LabelPorts: "agent=31000:31000",
		sandbox.LabelName:  "name-" + id,
	}
}

// add makes a container without an event (it existed before the monitor).
func (f *fakeEngine) add(id, state string, created time.Time, labels map[string]string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	cid := fmt.Sprintf("c%063d", f.seq)
	if labels == nil {
		labels = berthLabels(id, "alice")
	}
	c := &fakeContainer{id: cid, labels: labels, state: state, created: created}
	if state != stateCreated {
		c.startedAt = created
	}
	f.cs[cid] = c
	return cid
}

// create makes a container and emits its create event.
func (f *fakeEngine) create(id string, labels map[string]string) string {
	cid := f.add(id, stateCreated, time.Now(), labels)
	f.emit(cid, events.ActionCreate, nil)
	return cid
}

func (f *fakeEngine) start(cid string) {
	f.set(cid, func(c *fakeContainer) { c.state, c.startedAt, c.exit, c.oom = stateRunning, time.Now(), 0, false })
	f.emit(cid, events.ActionStart, nil)
}

func (f *fakeEngine) pause(cid string) {
	f.set(cid, func(c *fakeContainer) { c.state = statePaused })
	f.emit(cid, events.ActionPause, nil)
}

func (f *fakeEngine) unpause(cid string) {
	f.set(cid, func(c *fakeContainer) { c.state = stateRunning })
	f.emit(cid, events.ActionUnPause, nil)
}

// stop is docker stop: kill (SIGTERM), die, stop.
func (f *fakeEngine) stop(cid string, code int) {
	f.emit(cid, events.ActionKill, map[string]string{"signal": "15"})
	f.die(cid, code, false)
	f.emit(cid, events.ActionStop, nil)
}

// die is the container's main process exiting by itself.
func (f *fakeEngine) die(cid string, code int, oom bool) {
	if oom {
		f.emit(cid, events.ActionOOM, nil)
	}
	f.set(cid, func(c *fakeContainer) { c.state, c.exit, c.oom = stateExited, code, oom })
	f.emit(cid, events.ActionDie, map[string]string{"exitCode": strconv.Itoa(code)})
}

// remove is docker rm -f: kill and die while the removal is in progress,
// then destroy.
func (f *fakeEngine) remove(cid string) {
	f.mu.Lock()
	c := f.cs[cid]
	wasRunning := c != nil && (c.state == stateRunning || c.state == statePaused)
	f.mu.Unlock()
	if c == nil {
		return
	}
	if wasRunning {
		f.set(cid, func(c *fakeContainer) { c.removing = true })
		f.emit(cid, events.ActionKill, map[string]string{"signal": "9"})
		f.set(cid, func(c *fakeContainer) { c.state, c.exit = stateRemoving, 137 })
		f.emit(cid, events.ActionDie, map[string]string{"exitCode": "137"})
	}
	attrs := c.labels
	f.mu.Lock()
	delete(f.cs, cid)
	f.mu.Unlock()
	f.emitAttrs(cid, events.ActionDestroy, attrs, nil)
}

func (f *fakeEngine) set(cid string, fn func(*fakeContainer)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.cs[cid]; c != nil {
		fn(c)
	}
}

func (f *fakeEngine) cid(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	for cid, c := range f.cs {
		if c.labels[sandbox.LabelID] == id {
			return cid
		}
	}
	return ""
}

func (f *fakeEngine) emit(cid string, action events.Action, extra map[string]string) {
	f.mu.Lock()
	c := f.cs[cid]
	f.mu.Unlock()
	if c == nil {
		panic("emit for unknown container " + cid)
	}
	f.emitAttrs(cid, action, c.labels, extra)
}

func (f *fakeEngine) emitAttrs(cid string, action events.Action, labels, extra map[string]string) {
	attrs := map[string]string{}
	for k, v := range labels {
		attrs[k] = v
	}
	for k, v := range extra {
		attrs[k] = v
	}
	now := time.Now()
	msg := events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: cid, Attributes: attrs}, Time: now.Unix(), TimeNano: now.UnixNano()}
	f.mu.Lock()
	f.log = append(f.log, msg)
	streams := slices.Clone(f.streams)
	f.mu.Unlock()
	for _, s := range streams {
		s.push(msg)
	}
}

// breakStreams ends every open event stream with err, as a dropped
// connection does.
func (f *fakeEngine) breakStreams(err error) {
	f.mu.Lock()
	streams := f.streams
	f.streams = nil
	f.mu.Unlock()
	for _, s := range streams {
		s.mu.Lock()
		s.broken = true
		s.mu.Unlock()
		s.errs <- err
	}
}

func (s *fakeStream) push(msg events.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		return
	}
	s.queue = append(s.queue, msg)
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// pump delivers the queue in order until the stream's ctx ends.
func (s *fakeStream) pump() {
	for {
		s.mu.Lock()
		if len(s.queue) == 0 && s.eof {
			s.mu.Unlock()
			s.errs <- io.EOF
			return
		}
		if len(s.queue) == 0 || s.broken {
			s.mu.Unlock()
			select {
			case <-s.notify:
				continue
			case <-s.ctx.Done():
				return
			}
		}
		msg := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		select {
		case s.msgs <- msg:
		case <-s.ctx.Done():
			return
		}
	}
}

func matchesFilters(labels map[string]string, f client.Filters) bool {
	for want := range f["label"] {
		k, v, hasValue := strings.Cut(want, "=")
		got, ok := labels[k]
		if !ok || hasValue && got != v {
			return false
		}
	}
	return true
}

func (f *fakeEngine) Events(ctx context.Context, opts client.EventsListOptions) client.EventsResult {
	s := &fakeStream{ctx: ctx, msgs: make(chan events.Message), errs: make(chan error, 1), notify: make(chan struct{}, 1)}
	f.mu.Lock()
	f.sinces = append(f.sinces, opts.Since)
	f.untils = append(f.untils, opts.Until)
	since, until := parseStamp(opts.Since), parseStamp(opts.Until)
	for _, msg := range f.log {
		if msg.TimeNano >= since && (opts.Until == "" || msg.TimeNano <= until) && matchesFilters(msg.Actor.Attributes, opts.Filters) {
			s.queue = append(s.queue, msg)
		}
	}
	if opts.Until == "" {
		f.streams = append(f.streams, s)
	} else {
		s.eof = true // a bounded replay: io.EOF after the queue
	}
	f.mu.Unlock()
	go s.pump()
	f.opened <- struct{}{}
	return client.EventsResult{Messages: s.msgs, Err: s.errs}
}

func parseStamp(s string) int64 {
	sec, nsec, _ := strings.Cut(s, ".")
	a, _ := strconv.ParseInt(sec, 10, 64)
	b, _ := strconv.ParseInt(nsec, 10, 64)
	return a*1e9 + b
}

func (f *fakeEngine) ContainerList(_ context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.listErr != nil {
		return client.ContainerListResult{}, f.listErr
	}
	var out []container.Summary
	for _, c := range f.cs {
		if !matchesFilters(c.labels, opts.Filters) {
			continue
		}
		status := "Up"
		if c.state == stateExited {
			status = fmt.Sprintf("Exited (%d) 3 seconds ago", c.exit)
		}
		out = append(out, container.Summary{
			ID: c.id, Labels: c.labels, State: container.ContainerState(c.state), Status: status, Created: c.created.Unix(),
		})
	}
	return client.ContainerListResult{Items: out}, nil
}

func (f *fakeEngine) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.inspects++
	c := f.cs[id]
	if c == nil {
		return client.ContainerInspectResult{}, fmt.Errorf("no such container: %s: %w", id, cerrdefs.ErrNotFound)
	}
	started := "0001-01-01T00:00:00Z"
	if !c.startedAt.IsZero() {
		started = c.startedAt.UTC().Format(time.RFC3339Nano)
	}
	return client.ContainerInspectResult{Container: container.InspectResponse{
		ID: c.id, Created: c.created.UTC().Format(time.RFC3339Nano), Name: "/" + c.name,
		State: &container.State{
			Status: container.ContainerState(c.state), Running: c.state == stateRunning, Paused: c.state == statePaused,
			ExitCode: c.exit, OOMKilled: c.oom, StartedAt: started,
		},
		Config: &container.Config{Labels: c.labels, Env: []string{agentapi.EnvKey + "=key-" + c.labels[sandbox.LabelID]}},
	}}, nil
}

func (f *fakeEngine) counts() (lists, inspects int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lists, f.inspects
}

// fakeRuntime is the sandbox.Runtime policies act through: it records each
// call and changes the fake engine as Docker would.
type fakeRuntime struct {
	eng   *fakeEngine
	mu    sync.Mutex
	calls []call
	fail  error
}

type call struct {
	op, id string
	at     time.Time
}

func (r *fakeRuntime) record(op, id string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call{op, id, time.Now()})
	if r.fail != nil {
		return "", r.fail
	}
	cid := r.eng.cid(id)
	if cid == "" {
		return "", fmt.Errorf("%w: %s", sandbox.ErrNotFound, id)
	}
	return cid, nil
}

func (r *fakeRuntime) callsOf(op string) []call {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []call
	for _, c := range r.calls {
		if op == "" || c.op == op {
			out = append(out, c)
		}
	}
	return out
}

func (r *fakeRuntime) get(cid string) sandbox.Sandbox {
	res, _ := r.eng.ContainerInspect(context.Background(), cid, client.ContainerInspectOptions{})
	return records().FromInspect(res.Container)
}

func (r *fakeRuntime) Pause(_ context.Context, id string) (sandbox.Sandbox, error) {
	cid, err := r.record("pause", id)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	r.eng.pause(cid)
	return r.get(cid), nil
}

func (r *fakeRuntime) Stop(_ context.Context, id string) (sandbox.Sandbox, error) {
	cid, err := r.record("stop", id)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	r.eng.stop(cid, 0)
	return r.get(cid), nil
}

func (r *fakeRuntime) Remove(_ context.Context, id string) error {
	cid, err := r.record("remove", id)
	if errors.Is(err, sandbox.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	r.eng.remove(cid)
	return nil
}

var errNotFake = errors.New("not in the fake")

func (r *fakeRuntime) Create(context.Context, sandbox.Spec) (sandbox.Sandbox, error) {
	return sandbox.Sandbox{}, errNotFake
}
func (r *fakeRuntime) Get(context.Context, string) (sandbox.Sandbox, error) {
	return sandbox.Sandbox{}, errNotFake
}
func (r *fakeRuntime) List(context.Context, sandbox.ListOptions) ([]sandbox.Sandbox, error) {
	return nil, errNotFake
}
func (r *fakeRuntime) Resume(context.Context, string) (sandbox.Sandbox, error) {
	return sandbox.Sandbox{}, errNotFake
}
func (r *fakeRuntime) Logs(context.Context, string, sandbox.LogOptions) (io.ReadCloser, error) {
	return nil, errNotFake
}

// records is the real record builder of the Docker runtime (it needs no
// engine for that).
func records() *docker.Runtime { return docker.New(nil, docker.Options{}) }

// harness runs a Monitor on a fake engine.
type harness struct {
	t      *testing.T
	eng    *fakeEngine
	rt     *fakeRuntime
	m      *Monitor
	events <-chan Event
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start runs a monitor with opts (Engine, Runtime unless a *fakeRuntime is
// there, and Records filled in;
// health checks and the reconciler off unless set) and subscribes to it.
// It stops the monitor when the test ends.
func start(t *testing.T, eng *fakeEngine, opts Options) *harness {
	t.Helper()
	rt, _ := opts.Runtime.(*fakeRuntime)
	if rt == nil {
		rt = &fakeRuntime{eng: eng}
	}
	opts.Engine, opts.Runtime, opts.Records = eng, rt, records()
	if opts.HealthInterval == 0 {
		opts.HealthInterval = -1
	}
	if opts.ReconcileInterval == 0 {
		opts.ReconcileInterval = -1
	}
	m, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{t: t, eng: eng, rt: rt, m: m, events: m.Subscribe(ctx), cancel: cancel, done: make(chan error, 1)}
	go func() { h.done <- m.Run(ctx) }()
	t.Cleanup(h.stop)
	<-m.Synced()
	<-eng.opened // the event stream is open
	return h
}

// stop ends the monitor and waits for Run; synctest tests call it (by
// defer) before their bubble ends.
func (h *harness) stop() {
	h.once.Do(func() {
		h.cancel()
		if err := <-h.done; err != nil {
			h.t.Errorf("Run: %v", err)
		}
	})
}

// drain returns the events published so far (call after synctest.Wait, or
// when the monitor is idle).
func (h *harness) drain() []Event {
	var out []Event
	for {
		select {
		case e, ok := <-h.events:
			if !ok {
				return out
			}
			out = append(out, e)
		default:
			return out
		}
	}
}

// summary is "type:id[:reason]" for each event, for comparisons.
func summary(evs []Event) []string {
	out := make([]string, len(evs))
	for i, e := range evs {
		out[i] = e.Type + ":" + e.ID
	}
	return out
}

func (h *harness) status(id string) sandbox.Status {
	sb, ok := h.m.Get(id)
	if !ok {
		return "GONE"
	}
	return sb.Status
}
