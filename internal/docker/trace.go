package docker

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Trace records how long each phase of a create (or a claim) took, so that
// berth bench can say where the time goes. Attach one to a call's context
// with WithTrace; a call without one records nothing.
type Trace struct {
	mu     sync.Mutex
	phases []Phase
}

// Phase is one step of a create and its duration.
type Phase struct {
	Name     string        `json:"name"`
	Duration time.Duration `json:"duration_ns"`
}

// Phases of a cold create and of a claim, in order.
const (
	PhaseValidate = "validate"         // spec checks and defaults, mounts parsed
	PhaseImage    = "image"            // runtime image resolved (cached after the first create)
	PhasePrepare  = "prepare"          // sandbox and overlay dirs
	PhasePorts    = "ports"            // host port reservations
	PhaseCreate   = "container_create" // ContainerCreate (+ joining extra networks)
	PhaseStart    = "container_start"  // ContainerStart
	PhaseReady    = "ready"            // until the agent answers /alive
	PhaseInspect  = "inspect"          // the record, from one inspect
	PhaseClaim    = "claim_record"     // claim: the atomic claim record (and name check)
	PhaseAgentEnv = "agent_env"        // claim: the caller's env given to the agent
	PhaseRename   = "rename"           // claim: the container takes its sandbox name
)

type traceKey struct{}

// WithTrace returns ctx carrying t: creates and claims made with it add
// their phases to t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// Phases returns the phases recorded so far, in order.
func (t *Trace) Phases() []Phase {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.phases)
}

func (t *Trace) add(name string, d time.Duration) {
	t.mu.Lock()
	t.phases = append(t.phases, Phase{Name: name, Duration: d})
	t.mu.Unlock()
}

// stopwatch times consecutive phases into the ctx's Trace, if any.
type stopwatch struct {
	t    *Trace
	last time.Time
}

func startWatch(ctx context.Context) *stopwatch {
	t, _ := ctx.Value(traceKey{}).(*Trace)
	return &stopwatch{t: t, last: time.Now()}
}

// lap records the time since the last lap as phase name.
func (w *stopwatch) lap(name string) {
	if w.t == nil {
		return
	}
	now := time.Now()
	w.t.add(name, now.Sub(w.last))
	w.last = now
}
