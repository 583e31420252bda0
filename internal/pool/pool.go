// Package pool keeps warm pools of sandboxes: created, started and
// agent-ready ahead of time, one pool per shape of spec (runtime image,
// limits, network, mounts...). A create whose shape has a pooled sandbox
// claims it, and the parts of the spec that belong to the request (name,
// owner, labels, env, security policy) are applied at claim time; any other create goes
// cold, transparently. Refills run in the background, a bounded number at a
// time. Pooled sandboxes are ordinary labelled containers (see
// docker.LabelPool), so a pool survives a restart of berth: the manager
// adopts them again.
package pool

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Runtime is what the manager needs of the sandbox runtime;
// *docker.Runtime implements it.
type Runtime interface {
	sandbox.Runtime
	Normalize(spec sandbox.Spec) (sandbox.Spec, error)
	CreatePooled(ctx context.Context, spec sandbox.Spec, shape string, labels map[string]string) (sandbox.Sandbox, error)
	ListPooled(ctx context.Context, shape string) ([]docker.Pooled, error)
	Inspect(ctx context.Context, containerID string) (sandbox.Sandbox, error)
	Claim(ctx context.Context, sb sandbox.Sandbox, spec sandbox.Spec) (sandbox.Sandbox, error)
	RemovePooled(ctx context.Context, sb sandbox.Sandbox) error
	RuntimeImage(ctx context.Context, spec sandbox.ImageSpec) (string, error)
	Agent(sb sandbox.Sandbox) *agentapi.Client
}

var _ Runtime = (*docker.Runtime)(nil)

// Shape is one pool: the spec its sandboxes are made from (its per-request
// parts are ignored) and how many to keep ready.
type Shape struct {
	Spec sandbox.Spec
	Size int
}

// Defaults of Options.
const (
	DefaultConcurrency = 1
	DefaultResync      = 15 * time.Second
	DefaultRefillDelay = 200 * time.Millisecond
	// claimAttempts bounds the pooled sandboxes one create tries before it
	// goes cold (another process may win each of them).
	claimAttempts = 3
	// minBackoff and maxBackoff space the refills of a shape whose creates
	// fail (a missing image, say), so a bad shape does not spin.
	minBackoff = time.Second
	maxBackoff = time.Minute
	// strayGrace is how old an unknown pooled container that is not
	// running must be before a resync removes it (it may be another
	// process's create in flight).
	strayGrace = 2 * time.Minute
	// aliveTimeout bounds the check of an adopted sandbox's agent.
	aliveTimeout = 2 * time.Second
)

// Options configure a Manager.
type Options struct {
	Shapes []Shape
	// Concurrency is the refill's CPU budget: how many pooled sandboxes
	// are created at once, over every shape (default 1). Claims and cold
	// creates never wait for it.
	Concurrency int
	// Labels go on every pooled container as Docker labels, never shown
	// as a sandbox's. When set, the manager adopts, resyncs and drains only
	// pooled containers that carry them, so a bench or a test run never
	// touches the pools of a server on the same engine.
	Labels map[string]string
	// Resync is how often the pools are compared with the engine (pooled
	// sandboxes claimed by another berth process, or removed); default 15s.
	Resync time.Duration
	// RefillDelay holds refills back for that long after a claim (default
	// 200ms; negative = none): a create is CPU-heavy, and the caller of a
	// claim usually runs its first commands right away.
	RefillDelay time.Duration
	Logger      *slog.Logger
}

// ShapeStats is the state of one pool.
type ShapeStats struct {
	Key       string    `json:"key"`
	Image     string    `json:"image"`
	Network   string    `json:"network"`
	Memory    int64     `json:"memory,omitempty"`
	NanoCPUs  int64     `json:"nano_cpus,omitempty"`
	Size      int       `json:"size"`
	Ready     int       `json:"ready"`
	Filling   int       `json:"filling"`
	Claims    int64     `json:"claims"`   // creates served warm
	Misses    int64     `json:"misses"`   // creates of this shape that went cold: the pool was empty
	Failures  int64     `json:"failures"` // refill creates that failed
	LastError string    `json:"last_error,omitempty"`
	RetryAt   time.Time `json:"retry_at,omitzero"` // refills wait until then after failures
}

// Manager keeps the pools. Create is safe for concurrent use; Run keeps the
// pools filled in the background. Without Run (the CLI), Create still
// claims a pooled sandbox that some other process keeps.
type Manager struct {
	rt      Runtime
	opts    Options
	log     *slog.Logger
	wake    chan struct{}
	running atomic.Bool

	mu        sync.Mutex
	shapes    map[string]*shape
	order     []string        // shape keys, in configuration order
	claiming  map[string]bool // sandbox ids taken out of a pool by a claim in flight
	inflight  int             // refill creates running, over every shape
	lastClaim time.Time       // refills wait RefillDelay after it
}

// shape is one pool's state. The manager's mu guards it.
type shape struct {
	key     string
	spec    sandbox.Spec // normalized
	size    int
	ready   []sandbox.Sandbox // full records (with key), oldest first
	filling int
	claims  int64
	misses  int64
	fails   int64
	lastErr string
	retryAt time.Time
	backoff time.Duration
}

// New returns a Manager of opts.Shapes over rt; it does nothing until Run
// or Fill. Two shapes with one key are an error.
func New(rt Runtime, opts Options) (*Manager, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.Resync <= 0 {
		opts.Resync = DefaultResync
	}
	if opts.RefillDelay == 0 {
		opts.RefillDelay = DefaultRefillDelay
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{
		rt: rt, opts: opts, log: log.With("component", "pool"),
		wake:     make(chan struct{}, 1),
		shapes:   map[string]*shape{},
		claiming: map[string]bool{},
	}
	for i, s := range opts.Shapes {
		if _, err := m.addShape(s.Spec, s.Size, false); err != nil {
			return nil, fmt.Errorf("pool shape %d: %w", i+1, err)
		}
	}
	return m, nil
}

// addShape adds a pool for spec, or resizes it if update.
func (m *Manager) addShape(spec sandbox.Spec, size int, update bool) (string, error) {
	if size < 0 {
		return "", fmt.Errorf("size %d: must be 0 or more", size)
	}
	if spec.Image.ForceRebuild {
		return "", errors.New("force_rebuild_runtime: a pooled sandbox cannot be rebuilt per create; unset it for pooled shapes")
	}
	norm, err := m.rt.Normalize(spec)
	if err != nil {
		return "", err
	}
	key := ShapeKey(norm)
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.shapes[key]; s != nil {
		if !update {
			return "", fmt.Errorf("two shapes have the same spec (key %s)", key)
		}
		s.size = size
	} else {
		m.shapes[key] = &shape{key: key, spec: shapeOf(norm), size: size}
		m.order = append(m.order, key)
	}
	m.poke()
	return key, nil
}

// SetShape adds a pool for spec with size, or resizes the pool of its
// shape, and returns the shape key. Run fills or shrinks it.
func (m *Manager) SetShape(spec sandbox.Spec, size int) (string, error) {
	return m.addShape(spec, size, true)
}

// Resize sets the size of the pool with key shape. Run fills it, or
// removes the extra sandboxes.
func (m *Manager) Resize(key string, size int) error {
	if size < 0 {
		return fmt.Errorf("resize pool %s: size %d must be 0 or more", key, size)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.shapes[key]
	if s == nil {
		return fmt.Errorf("resize pool %s: no such shape", key)
	}
	s.size = size
	m.poke()
	return nil
}

// Stats returns the state of every pool, in configuration order.
func (m *Manager) Stats() []ShapeStats {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]ShapeStats, 0, len(m.order))
	for _, k := range m.order {
		s := m.shapes[k]
		st := ShapeStats{
			Key: k, Image: imageOf(s.spec), Network: s.spec.Network,
			Memory: s.spec.Limits.Memory, NanoCPUs: s.spec.Limits.NanoCPUs,
			Size: s.size, Ready: len(s.ready), Filling: s.filling,
			Claims: s.claims, Misses: s.misses, Failures: s.fails, LastError: s.lastErr,
		}
		if time.Now().Before(s.retryAt) {
			st.RetryAt = s.retryAt
		}
		out = append(out, st)
	}
	return out
}

func imageOf(spec sandbox.Spec) string {
	if spec.Image.Runtime != "" {
		return spec.Image.Runtime
	}
	return spec.Image.Base
}

// Create makes a sandbox for spec: warm (true) by claiming a pooled
// sandbox of its shape when there is one, else cold through the runtime,
// transparently. A claim that fails for any reason but the caller's (a
// name in use) falls back to a cold create.
func (m *Manager) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, bool, error) {
	if spec.Image.ForceRebuild {
		sb, err := m.rt.Create(ctx, spec)
		return sb, false, err
	}
	norm, err := m.rt.Normalize(spec)
	if err != nil {
		return sandbox.Sandbox{}, false, err
	}
	key := ShapeKey(norm)
	for range claimAttempts {
		cand, ok := m.take(ctx, key)
		if !ok {
			break
		}
		sb, err := m.rt.Claim(ctx, cand, spec)
		m.done(key, cand.ID, err == nil)
		switch {
		case err == nil:
			return sb, true, nil
		case errors.Is(err, sandbox.ErrConflict), errors.Is(err, sandbox.ErrInvalidSpec):
			// The caller's mistake: a cold create would fail alike. The
			// pooled sandbox was not touched.
			m.putBack(key, cand)
			return sandbox.Sandbox{}, false, err
		case ctx.Err() != nil:
			return sandbox.Sandbox{}, false, ctx.Err()
		case errors.Is(err, docker.ErrClaimed):
			m.log.Debug("pooled sandbox claimed by another process", "shape", key, "sandbox", cand.ID)
		default:
			m.log.Warn("claim failed; trying another pooled sandbox or a cold create", "shape", key, "sandbox", cand.ID, "err", err)
		}
	}
	m.miss(key)
	sb, err := m.rt.Create(ctx, spec)
	return sb, false, err
}

// take takes a ready sandbox of shape key out of its pool. Without Run,
// it looks for one in the engine (another process keeps the pools).
func (m *Manager) take(ctx context.Context, key string) (sandbox.Sandbox, bool) {
	if m.running.Load() {
		m.mu.Lock()
		defer m.mu.Unlock()
		s := m.shapes[key]
		if s == nil || len(s.ready) == 0 {
			return sandbox.Sandbox{}, false
		}
		sb := s.ready[0]
		s.ready = s.ready[1:]
		m.claiming[sb.ID] = true
		return sb, true
	}
	list, err := m.rt.ListPooled(ctx, key)
	if err != nil {
		m.log.Warn("looking for a pooled sandbox", "shape", key, "err", err)
		return sandbox.Sandbox{}, false
	}
	for _, p := range list {
		if p.Sandbox.State != "running" {
			continue
		}
		sb, err := m.rt.Inspect(ctx, p.Sandbox.ContainerID)
		if err != nil || sb.Owner != docker.OwnerPool {
			continue
		}
		return sb, true
	}
	return sandbox.Sandbox{}, false
}

// done ends a claim of sandbox id, taken from pool key.
func (m *Manager) done(key, id string, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.claiming, id)
	if s := m.shapes[key]; s != nil && ok {
		s.claims++
	}
	m.lastClaim = time.Now()
	m.poke() // a refill is due, whatever happened
}

// putBack returns a sandbox a claim did not touch to the front of its pool.
func (m *Manager) putBack(key string, sb sandbox.Sandbox) {
	if !m.running.Load() {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.shapes[key]; s != nil {
		s.ready = append([]sandbox.Sandbox{sb}, s.ready...)
	}
}

func (m *Manager) miss(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.shapes[key]; s != nil {
		s.misses++
	}
}

// poke wakes the refill loop.
func (m *Manager) poke() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// Runtime returns rt with Create going through the pools; every other
// method is rt's. berth serve hands it to its API.
func (m *Manager) Runtime() sandbox.Runtime { return pooledRuntime{Runtime: m.rt, m: m} }

type pooledRuntime struct {
	Runtime
	m *Manager
}

func (p pooledRuntime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	sb, _, err := p.m.Create(ctx, spec)
	return sb, err
}

// Keys returns the shape keys, in configuration order.
func (m *Manager) Keys() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.order)
}

// labels are the Docker labels of a pooled container besides berth's.
func (m *Manager) labels() map[string]string { return maps.Clone(m.opts.Labels) }

// ours reports whether a pooled container carries the manager's labels.
func (m *Manager) ours(p docker.Pooled) bool {
	for k, v := range m.opts.Labels {
		if p.Labels[k] != v {
			return false
		}
	}
	return true
}

// listOurs lists the engine's unclaimed pooled sandboxes that are the
// manager's to manage (of shape key, or of every shape when key is "").
func (m *Manager) listOurs(ctx context.Context, key string) ([]docker.Pooled, error) {
	list, err := m.rt.ListPooled(ctx, key)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(list, func(p docker.Pooled) bool { return !m.ours(p) }), nil
}

// Census is Stats as the engine has it, for a process that does not run
// the pools (the CLI): each configured pool's Ready counts its unclaimed
// pooled sandboxes that are running, whoever made them; pooled sandboxes
// of shapes not configured here show as pools of size 0.
func (m *Manager) Census(ctx context.Context) ([]ShapeStats, error) {
	list, err := m.listOurs(ctx, "")
	if err != nil {
		return nil, err
	}
	stats := m.Stats()
	idx := map[string]int{}
	for i, st := range stats {
		idx[st.Key] = i
		stats[i].Ready = 0
	}
	for _, p := range list {
		i, ok := idx[p.Shape]
		if !ok {
			i = len(stats)
			idx[p.Shape] = i
			stats = append(stats, ShapeStats{Key: p.Shape, Image: p.Sandbox.Image, Network: p.Sandbox.Network})
		}
		if p.Sandbox.State == "running" {
			stats[i].Ready++
		}
	}
	return stats, nil
}
