package monitor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Engine is the part of the Docker client the monitor reads from;
// *client.Client satisfies it. The monitor never changes a container
// through it: actions go through Options.Runtime.
type Engine interface {
	ContainerList(ctx context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerInspect(ctx context.Context, id string, opts client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	Events(ctx context.Context, opts client.EventsListOptions) client.EventsResult
}

// Records turns containers into sandbox records, the way the runtime does;
// *docker.Runtime satisfies it.
type Records interface {
	FromSummary(c container.Summary) sandbox.Sandbox
	FromInspect(c container.InspectResponse) sandbox.Sandbox
}

// HealthFunc checks one sandbox's agent; nil means healthy. It must return
// once ctx ends (each call gets a ctx with Options.HealthTimeout).
type HealthFunc func(ctx context.Context, sb sandbox.Sandbox) error

// What the idle policy does to an idle sandbox.
const (
	IdleActionPause = "pause" // freeze it (memory kept); the default
	IdleActionStop  = "stop"  // stop its container (memory freed)
)

// Policy holds the lifecycle policies. Zero values turn each one off. They
// apply to sandboxes that carry an owner label (every sandbox berth makes
// does) and never to containers without the berth.id label.
type Policy struct {
	// MaxRunning, when > 0, caps the running sandboxes: above it, the
	// oldest running ones are paused, as OpenHands V1 does with 5. "Oldest"
	// is by the time a sandbox last became running (created_at for one that
	// never was paused), so a sandbox just created or resumed is never the
	// one paused to make room.
	MaxRunning int
	// IdleTimeout, when > 0, acts on a sandbox with no API activity (Touch)
	// and no start or resume for that long: IdleAction "pause" freezes a
	// running one, "stop" stops a running or paused one.
	IdleTimeout time.Duration
	IdleAction  string
	// TTL, when > 0, removes a sandbox that long after its creation,
	// whatever its state.
	TTL time.Duration
}

// Options configure a Monitor. Engine, Runtime and Records are required;
// every other field has a default. A negative duration turns its loop off.
type Options struct {
	Engine  Engine          // where the view comes from (list, inspect, events)
	Runtime sandbox.Runtime // what policies and the reconciler act through (Pause, Stop, Remove)
	Records Records         // container → sandbox record (the *docker.Runtime)
	// Scope, if set, narrows the view to berth containers that also carry
	// all of these labels (tests use their run label). Nil = every
	// container with the berth.id label.
	Scope map[string]string

	// Health checks the agents of running sandboxes. Nil means an HTTP GET
	// of AgentURL+HealthPath with HTTPClient (unix:// agent URLs included),
	// sending the sandbox's key; any 2xx answer is healthy.
	Health         HealthFunc
	HTTPClient     *http.Client  // nil = a keep-alive client without proxy
	HealthPath     string        // default "/health"
	HealthInterval time.Duration // between rounds; default 10s, < 0 = no health checks
	HealthTimeout  time.Duration // per check; default 2s
	HealthFailures int           // consecutive failures that turn a sandbox ERROR; default 2
	HealthWorkers  int           // checks at once; default 16
	StartupGrace   time.Duration // failures this soon after a start do not count; default 15s, < 0 = none

	Policy Policy

	// ReconcileInterval is how often the reconciler runs (also once right
	// after the first sync); default 1m, < 0 = never. It re-lists the
	// containers (correcting the view if the event stream missed
	// anything), removes berth containers still in state "created" (a
	// create that never finished) older than CreateGrace (default 2m), and
	// calls ReleaseOrphans.
	ReconcileInterval time.Duration
	CreateGrace       time.Duration
	// ReleaseOrphans, if set, is called by each reconciler pass with the
	// ids of every sandbox that has a container (any state), to release
	// what sandboxes that are gone still hold (ports, overlay and socket
	// dirs). A sandbox being created may not have its container yet: the
	// callback must keep what is younger than its own grace (ports.Reclaim
	// does).
	ReleaseOrphans func(ctx context.Context, live map[string]bool) error

	// SubscriberBuffer is each subscriber's channel capacity (default 256).
	// A subscriber that lets it fill up is dropped: its channel is closed.
	SubscriberBuffer int

	Logger     *slog.Logger          // nil = discard
	Registerer prometheus.Registerer // nil = metrics are kept but not registered
	// Now reads the clock (default time.Now). Deadlines are waited for with
	// the standard library's timers, so timing tests run the monitor inside
	// a testing/synctest bubble, where both are fake.
	Now func() time.Time
}

// Defaults.
const (
	DefaultHealthInterval    = 10 * time.Second
	DefaultHealthTimeout     = 2 * time.Second
	DefaultHealthFailures    = 2
	DefaultHealthWorkers     = 16
	DefaultStartupGrace      = 15 * time.Second
	DefaultReconcileInterval = time.Minute
	DefaultCreateGrace       = 2 * time.Minute
	DefaultSubscriberBuffer  = 256
)

func (o *Options) setDefaults() error {
	var errs []error
	if o.Engine == nil {
		errs = append(errs, errors.New("Engine is required"))
	}
	if o.Runtime == nil {
		errs = append(errs, errors.New("Runtime is required"))
	}
	if o.Records == nil {
		errs = append(errs, errors.New("Records is required"))
	}
	switch o.Policy.IdleAction {
	case "":
		o.Policy.IdleAction = IdleActionPause
	case IdleActionPause, IdleActionStop:
	default:
		errs = append(errs, fmt.Errorf("Policy.IdleAction %q: want %q or %q", o.Policy.IdleAction, IdleActionPause, IdleActionStop))
	}
	if o.Policy.MaxRunning < 0 || o.Policy.IdleTimeout < 0 || o.Policy.TTL < 0 {
		errs = append(errs, errors.New("Policy: MaxRunning, IdleTimeout and TTL must not be negative"))
	}
	if o.HealthFailures < 0 || o.HealthWorkers < 0 || o.SubscriberBuffer < 0 || o.HealthTimeout < 0 || o.CreateGrace < 0 {
		errs = append(errs, errors.New("HealthFailures, HealthWorkers, HealthTimeout, CreateGrace and SubscriberBuffer must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("monitor: %w", err)
	}
	if o.HealthPath == "" {
		o.HealthPath = agentapi.PathHealth
	}
	def(&o.HealthInterval, DefaultHealthInterval)
	def(&o.HealthTimeout, DefaultHealthTimeout)
	def(&o.HealthFailures, DefaultHealthFailures)
	def(&o.HealthWorkers, DefaultHealthWorkers)
	def(&o.StartupGrace, DefaultStartupGrace)
	def(&o.ReconcileInterval, DefaultReconcileInterval)
	def(&o.CreateGrace, DefaultCreateGrace)
	def(&o.SubscriberBuffer, DefaultSubscriberBuffer)
	if o.StartupGrace < 0 {
		o.StartupGrace = 0
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.HTTPClient == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.Proxy = nil // agents are direct neighbours
		t.MaxIdleConnsPerHost = 4
		o.HTTPClient = &http.Client{Transport: t}
	}
	return nil
}

func def[T int | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}
