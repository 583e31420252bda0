// Package sandbox is berth's domain: what a sandbox is, the statuses it can
// be in, what it takes to create one, and the Runtime interface that a
// backend (Docker today) implements. It imports no backend code.
package sandbox

import (
	"context"
	"io"
	"time"
)

// Status is a sandbox's state as berth reports it. The values are the ones
// of the OpenHands sandbox service, so clients written for it understand them.
type Status string

// The statuses.
const (
	StatusStarting Status = "STARTING"
	StatusRunning  Status = "RUNNING"
	StatusPaused   Status = "PAUSED"
	StatusMissing  Status = "MISSING"
	StatusError    Status = "ERROR"
)

// StatusFromState maps a Docker container state to a Status, exactly as the
// seed document does: a stopped (exited) container counts as PAUSED, since it
// can be resumed; the raw state stays visible in Sandbox.State.
func StatusFromState(state string) Status {
	switch state {
	case "running":
		return StatusRunning
	case "paused", "exited":
		return StatusPaused
	case "created", "restarting":
		return StatusStarting
	case "removing":
		return StatusMissing
	default: // "dead" and anything unknown
		return StatusError
	}
}

// Port is one published port of a sandbox.
type Port struct {
	Name      string `json:"name"` // agent, vscode, app1, app2
	HostIP    string `json:"host_ip"`
	HostPort  int    `json:"host_port"`
	Container int    `json:"container_port"`
}

// Sandbox is the record of one sandbox, built from its container.
type Sandbox struct {
	ID           string            `json:"id"`
	Name         string            `json:"name,omitempty"`
	Status       Status            `json:"status"`
	State        string            `json:"state"` // raw Docker state: created, running, paused, exited, ...
	ExitCode     int               `json:"exit_code"`
	OOMKilled    bool              `json:"oom_killed"`
	Error        string            `json:"error,omitempty"`  // Docker's error for the container, if any
	Reason       string            `json:"reason,omitempty"` // why the status is what it is, e.g. a failing health check
	Image        string            `json:"image"`            // the base image asked for
	RuntimeImage string            `json:"runtime_image"`    // the image the container runs
	CreatedAt    time.Time         `json:"created_at"`
	Ports        []Port            `json:"ports"`
	URLs         map[string]string `json:"urls"`
	Labels       map[string]string `json:"labels"` // the caller's labels, without berth's own
	Owner        string            `json:"owner,omitempty"`
	Network      string            `json:"network,omitempty"` // bridge, none, internal or host
	ContainerID  string            `json:"container_id"`
	// SecurityPolicy is the sandbox's own policy (label
	// berth.security-policy), if its create asked for one: berth serve
	// applies the stricter of it and its tenant's.
	SecurityPolicy string `json:"security_policy,omitempty"`

	// AgentURL is where the host reaches the sandbox's agent; Key is the
	// sandbox's secret. Neither is printed: the key is for the agent only.
	AgentURL string `json:"-"`
	Key      string `json:"-"`
}

// Spec is what a caller asks for when creating a sandbox. The image-related
// and per-machine settings come from configuration (see ImageSpec and the
// backend's options); the fields here are the per-sandbox ones.
type Spec struct {
	Name   string            // optional, unique among sandboxes; letters, digits, '.', '_' and '-'
	Image  ImageSpec         // how to get the runtime image
	Env    map[string]string // environment of the sandbox's processes
	Labels map[string]string // the caller's labels; berth's own keys are refused
	Owner  string            // tenant; "" means "local"
	// SecurityPolicy is the sandbox's own security policy (PolicyOff,
	// PolicyAudit, PolicyConfirm, PolicyDeny; "" = none): berth serve
	// applies the stricter of it and the tenant's. Like Name and Owner it
	// is per request: a warm pool's claim gives it. (omitempty keeps the
	// warm pools' shape keys, a hash of a spec's JSON, what they were.)
	SecurityPolicy string `json:",omitempty"`

	BindAddress    string        // host address ports are published on (default 127.0.0.1)
	UseHostNetwork bool          // share the host's network namespace (same as Network "host")
	UserID         int           // uid commands run as (0 = root)
	Timeout        time.Duration // readiness deadline (default 120s)
	Debug          bool          // stream the container's logs into berth's log while waiting

	Network  string   // NetworkBridge (default), NetworkNone, NetworkInternal or NetworkHost
	Networks []string // more Docker networks to join (must exist)

	// Ports beyond the agent's. Each is published on BindAddress with the
	// same number inside and out, and its number is in the sandbox's env.
	VSCode     bool  // publish a VS Code port (VSCODE_PORT)
	VSCodePort int   // pin the VS Code port (implies VSCode); 0 = allocate
	AppPorts   int   // publish this many app ports, 0..2 (APP_PORT_1, APP_PORT_2)
	Publish    []int // container ports to publish on allocated host ports (-p)

	Volumes        []string // "host:container[:rw|ro|overlay]" items
	Tmpfs          []string // "PATH[:size=64m]" items
	Limits         Limits
	GPUs           GPUs
	ReadOnlyRootfs bool // read-only root filesystem; /workspace, /tmp and the home stay writable
}

// ImageSpec says how the runtime image of a sandbox is obtained.
type ImageSpec struct {
	Base         string            // base image (default debian:bookworm-slim)
	Runtime      string            // a ready runtime image to use or pull instead of building
	ExtraDeps    string            // shell snippet run as a build step
	BuildArgs    map[string]string // build args of that step
	ForceRebuild bool              // build even if the tagged image exists
}

// ListOptions filters List.
type ListOptions struct {
	All   bool              // include sandboxes that are not running
	Owner string            // only this owner's sandboxes ("" = all)
	Label map[string]string // only sandboxes with all these labels
}

// LogOptions selects container logs.
type LogOptions struct {
	Follow bool
	Tail   string // "all" or a number of lines
}

// Runtime is a place sandboxes run: a Docker engine today, Kubernetes later.
// Every method takes a sandbox reference: its id, a unique prefix of the id,
// or its name.
type Runtime interface {
	Create(ctx context.Context, spec Spec) (Sandbox, error)
	Get(ctx context.Context, ref string) (Sandbox, error)
	List(ctx context.Context, opts ListOptions) ([]Sandbox, error)
	Pause(ctx context.Context, ref string) (Sandbox, error)
	Resume(ctx context.Context, ref string) (Sandbox, error)
	Stop(ctx context.Context, ref string) (Sandbox, error)
	// Remove deletes the sandbox and everything berth made for it. Removing
	// a sandbox that is already gone is not an error.
	Remove(ctx context.Context, ref string) error
	Logs(ctx context.Context, ref string, opts LogOptions) (io.ReadCloser, error)
}
