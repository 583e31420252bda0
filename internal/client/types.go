// Package client is the Go client of berth serve's REST API, and holds the
// API's wire types, which the server (internal/server) shares: the two
// sides cannot drift apart. docs/server-api.md describes the API.
package client

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/units"
)

// Paths of the API. {id} is a sandbox reference: its id, a unique prefix of
// the id, or its name.
const (
	PathHealth    = "/healthz"
	PathMetrics   = "/metrics"
	PathOpenAPI   = "/api/v1/openapi.json"
	PathSandboxes = "/api/v1/sandboxes"
	PathBatchGet  = "/api/v1/sandboxes:batchGet"
	PathEvents    = "/api/v1/events"
	// AgentSuffix follows /api/v1/sandboxes/{id}; what comes after it is a
	// path of the sandbox's agent (see docs/agent-api.md).
	AgentSuffix = "/agent"
)

// SandboxPath is /api/v1/sandboxes/{id} followed by suffix (e.g. "/exec").
func SandboxPath(id, suffix string) string {
	return PathSandboxes + "/" + escapeSegment(id) + suffix
}

// escapeSegment escapes a path segment, ':' included, so a name can never
// be mistaken for a custom method such as ":batchGet".
func escapeSegment(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '.', c == '_', c == '~':
			b.WriteByte(c)
		default:
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// Limits of the API.
const (
	DefaultListLimit = 100  // items of a list page when limit is not given
	MaxListLimit     = 1000 // the largest limit, and the most ids of a batchGet
	MaxRequestBytes  = 1 << 20
)

// Error codes, in Error.Code. Codes of the agent (agentapi.Code*) pass
// through unchanged on the agent's own failures (a bad exec request...).
const (
	CodeBadRequest       = "bad_request"        // 400: malformed JSON, unknown field, bad parameter
	CodeInvalidSpec      = "invalid_spec"       // 400: the sandbox spec is invalid (sandbox.ErrInvalidSpec)
	CodeUnauthorized     = "unauthorized"       // 401: no or wrong bearer token
	CodeForbidden        = "forbidden"          // 403: the tenant may not ask for this (host mounts, host network, what only an admin may)
	CodeNotFound         = "not_found"          // 404: no such sandbox (or another tenant's), no such path
	CodeMethodNotAllowed = "method_not_allowed" // 405: the path exists, the method does not
	CodeAmbiguous        = "ambiguous"          // 409: a prefix matches several sandboxes
	CodeConflict         = "conflict"           // 409: name taken, state does not allow it
	CodeNotRunning       = "not_running"        // 409: the sandbox is paused or stopped
	CodeTooLarge         = "too_large"          // 413: request body over the limit
	CodeImage            = "image"              // 422: the runtime image cannot be had
	CodeQuota            = "quota_exceeded"     // 429: the tenant's quota would be exceeded
	CodeInternal         = "internal"           // 500: a fault of berth
	CodeStartFailed      = "start_failed"       // 502: the sandbox's container failed to start
	CodeAgent            = "agent_unreachable"  // 502: the sandbox's agent does not answer
	CodeUnavailable      = "unavailable"        // 503: the engine is unreachable, or the server is shutting down
	CodeReadyTimeout     = "ready_timeout"      // 504: the sandbox did not become ready in time
)

// Error is the body of every error answer.
type Error struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// CreateRequest is the body of POST /api/v1/sandboxes. Every field is
// optional: the server's configuration ([sandbox] of its berth.toml) gives
// the defaults, as it does for `berth create`.
type CreateRequest struct {
	Image        string            `json:"image,omitempty"`         // base image (berth builds the runtime image on it)
	RuntimeImage string            `json:"runtime_image,omitempty"` // a ready runtime image, used instead of building
	Name         string            `json:"name,omitempty"`
	Env          map[string]string `json:"env,omitempty"`
	Labels       map[string]string `json:"labels,omitempty"`
	Network      string            `json:"network,omitempty"`  // bridge, none, internal or host
	Networks     []string          `json:"networks,omitempty"` // more Docker networks to join
	Memory       Size              `json:"memory,omitempty"`   // bytes, or a string such as "512m"
	CPUs         float64           `json:"cpus,omitempty"`
	PidsLimit    int64             `json:"pids_limit,omitempty"` // -1 = none
	Volumes      []string          `json:"volumes,omitempty"`    // "host:container[:rw|ro|overlay]"
	Tmpfs        []string          `json:"tmpfs,omitempty"`      // "PATH[:size=64m]"
	Publish      []int             `json:"publish,omitempty"`    // container ports to publish
	VSCode       bool              `json:"vscode,omitempty"`
	AppPorts     int               `json:"app_ports,omitempty"`
	UserID       *int              `json:"user_id,omitempty"`   // 0 = root
	ReadOnly     *bool             `json:"read_only,omitempty"` // read-only root file system
	GPUs         string            `json:"gpus,omitempty"`      // "all" or "0,1"
	Timeout      Duration          `json:"timeout,omitempty"`   // readiness deadline: seconds, or "90s"
	// SecurityPolicy is the sandbox's own security policy: off, audit,
	// confirm or deny. It may only tighten the tenant's (the server
	// refuses a looser one); the server applies the stricter of the two.
	SecurityPolicy string `json:"security_policy,omitempty"`
}

// ListResponse is a page of GET /api/v1/sandboxes.
type ListResponse struct {
	Items []sandbox.Sandbox `json:"items"`
	// NextPageID, when not empty, is the page_id of the next page.
	NextPageID string `json:"next_page_id,omitempty"`
}

// BatchGetRequest is the body of POST /api/v1/sandboxes:batchGet.
type BatchGetRequest struct {
	IDs []string `json:"ids"`
}

// BatchGetResponse has one item per asked id, in order: null when there is
// no such sandbox.
type BatchGetResponse struct {
	Items []*sandbox.Sandbox `json:"items"`
}

// ExecRequest is the body of POST /api/v1/sandboxes/{id}/exec. Exactly one
// of Cmd and Command is set. With Session, the command runs in that
// persistent shell session (started if need be) and the stream's events
// are agentapi.SessionEvent; without, it is a one-shot exec.
type ExecRequest struct {
	Cmd     []string `json:"cmd,omitempty"`     // a program and its arguments
	Command string   `json:"command,omitempty"` // a shell string
	Session string   `json:"session,omitempty"`
	// One-shot only:
	Cwd   string            `json:"cwd,omitempty"`
	Env   map[string]string `json:"env,omitempty"`
	Stdin []byte            `json:"stdin,omitempty"` // base64 in JSON
	// TimeoutMS: a one-shot exec is killed after it; a session exec
	// returns with the output so far and "running": true.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// NoOutputTimeoutMS (session only): return once the command printed
	// nothing for this long.
	NoOutputTimeoutMS int64 `json:"no_output_timeout_ms,omitempty"`
	MaxOutputBytes    int64 `json:"max_output_bytes,omitempty"`
}

// ExecEvent is one line of an exec stream: an agent ExecEvent, with the
// session fields when the exec ran in a session. The last one is of type
// "exit" (with exit_code) or "error".
type ExecEvent = agentapi.SessionEvent

// Event is one event of GET /api/v1/events.
type Event = monitor.Event

// Size is a byte size that reads from JSON as a number of bytes or a string
// such as "512m" or "2g" (powers of 1024), and writes as a number.
type Size int64

// UnmarshalJSON reads a number of bytes or a size string.
func (s *Size) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		n, err := units.ParseSize(str)
		if err != nil {
			return err
		}
		*s = Size(n)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid size %s: want a number of bytes or a string such as \"512m\"", b)
	}
	*s = Size(n)
	return nil
}

// Duration is a time.Duration that reads from JSON as a number of seconds
// (120, 1.5) or a Go duration string ("2m", "90s"), and writes as a string.
type Duration time.Duration

// MarshalJSON writes a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads seconds or a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	if len(b) > 0 && b[0] == '"' {
		var str string
		if err := json.Unmarshal(b, &str); err != nil {
			return err
		}
		if f, err := strconv.ParseFloat(str, 64); err == nil {
			return d.setSeconds(f)
		}
		v, err := time.ParseDuration(str)
		if err != nil {
			return fmt.Errorf("invalid duration %q: want seconds (120) or a duration (\"2m\", \"90s\")", str)
		}
		*d = Duration(v)
		return nil
	}
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return fmt.Errorf("invalid duration %s: want seconds (120) or a duration (\"2m\", \"90s\")", b)
	}
	return d.setSeconds(f)
}

func (d *Duration) setSeconds(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > math.MaxInt64/float64(time.Second) {
		return fmt.Errorf("invalid duration %v seconds", f)
	}
	*d = Duration(f * float64(time.Second))
	return nil
}
