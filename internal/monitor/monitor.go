// Package monitor keeps berth serve's live view of every sandbox: rebuilt
// from container labels at start, then kept current from the Docker event
// stream (no polling on the hot path). It runs the agents' health checks,
// the lifecycle policies (max running, idle timeout, TTL) and the
// reconciler, and publishes what happens as Events.
//
// The server reads sandboxes from the Monitor (no Docker call per request)
// and performs actions through sandbox.Runtime.
package monitor

import (
	"time"

	"github.com/berth-dev/berth/internal/sandbox"
)

// Event types, as the server's event stream names them.
const (
	EventCreated = "created" // a container of a sandbox appeared
	EventReady   = "ready"   // a create (or resume) finished: the agent answers
	EventPaused  = "paused"
	EventResumed = "resumed"
	EventStopped = "stopped"
	EventRemoved = "removed"
	EventError   = "error"   // status turned ERROR (health check failing, container died)
	EventHealthy = "healthy" // a sandbox in ERROR answers its health check again
	EventOOM     = "oom"
	EventPolicy  = "policy" // a lifecycle policy acted; Reason says which and what
)

// Event is one thing that happened to a sandbox.
type Event struct {
	Type    string           `json:"type"`
	ID      string           `json:"id"`
	Owner   string           `json:"owner,omitempty"`
	Time    time.Time        `json:"time"`
	Reason  string           `json:"reason,omitempty"`
	Sandbox *sandbox.Sandbox `json:"sandbox,omitempty"` // the record after the event, when there is one
}

// Filter selects sandboxes of the view.
type Filter struct {
	Owner  string            // "" = every owner
	Status sandbox.Status    // "" = any
	Label  map[string]string // all must match
}

// The Monitor's API, implemented in this package (view.go: the view and
// Run; events.go: the Docker event stream; pubsub.go: Subscribe and
// Publish; health.go, policy.go, reconcile.go, metrics.go):
//
//	func New(opts Options) (*Monitor, error)
//	func (m *Monitor) Run(ctx context.Context) error      // blocks until ctx ends
//	func (m *Monitor) Synced() <-chan struct{}            // closed once the view is rebuilt from labels
//	func (m *Monitor) List(f Filter) []sandbox.Sandbox    // newest first
//	func (m *Monitor) Get(id string) (sandbox.Sandbox, bool)
//	func (m *Monitor) Subscribe(ctx context.Context) <-chan Event // closed when ctx ends, or when the subscriber falls behind
//	func (m *Monitor) Publish(e Event)                    // events the server knows first (ready, policy, ...)
//	func (m *Monitor) Touch(id string)                    // API activity, for the idle policy
//
// Options (see options.go) carry the Docker engine (ContainerList,
// ContainerInspect, Events), the sandbox.Runtime that policies act through,
// how to reach an agent, the health check settings, the policies, the
// reconciler's settings, a logger, a Prometheus registerer and a clock.
