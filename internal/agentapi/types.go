// Package agentapi holds the wire types of berth-agent's HTTP API and the Go
// client the host uses to call it. Host and agent share this package, so the
// two sides cannot drift apart.
package agentapi

// HeaderKey carries the sandbox's key on every call except /alive and /health.
const HeaderKey = "X-Session-API-Key"

// Paths served by the agent.
const (
	PathAlive  = "/alive"       // no key; 200 once the agent serves requests
	PathHealth = "/health"      // no key; 200 while the agent is healthy
	PathExec   = "/api/v1/exec" // POST ExecRequest, streams ExecEvent as NDJSON
)

// Environment variables the host sets for the agent inside the container.
// The agent removes them from the environment of every process it starts.
const (
	EnvKey     = "BERTH_AGENT_KEY"     // the sandbox's key (required)
	EnvPort    = "BERTH_AGENT_PORT"    // TCP port to listen on (required)
	EnvUserID  = "BERTH_USER_ID"       // uid commands run as; default 1000, 0 = root
	EnvWorkdir = "BERTH_WORKDIR"       // default working directory; default /workspace
	EnvListen  = "BERTH_AGENT_ADDRESS" // listen address; default all interfaces of the container
	// EnvSocket is a unix socket path the agent also listens on; with it,
	// BERTH_AGENT_PORT may be unset (a sandbox without a network).
	EnvSocket = "BERTH_AGENT_SOCKET"
	// EnvOwnPaths lists directories (colon-separated) that the agent gives
	// to the sandbox user at start: the roots of its volumes and tmpfs
	// mounts, never their content.
	EnvOwnPaths = "BERTH_OWN_PATHS"
)

// ExecRequest starts one command. Exactly one of Argv and Command is set:
// Argv runs a program directly, Command runs a shell string with bash when
// the image has it, sh otherwise.
type ExecRequest struct {
	Argv    []string          `json:"argv,omitempty"`
	Command string            `json:"command,omitempty"`
	Cwd     string            `json:"cwd,omitempty"` // absolute, or relative to the workdir
	Env     map[string]string `json:"env,omitempty"` // added to the sandbox user's environment
	Stdin   []byte            `json:"stdin,omitempty"`
	// TimeoutMS kills the command's whole process group after that many
	// milliseconds; 0 means no timeout.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// MaxOutputBytes caps stdout+stderr together; 0 means the agent's default.
	MaxOutputBytes int64 `json:"max_output_bytes,omitempty"`
}

// Event types of an exec stream, in the order they can appear: one start,
// any number of stdout/stderr, one exit (or one error instead of start).
const (
	EventStart  = "start"
	EventStdout = "stdout"
	EventStderr = "stderr"
	EventExit   = "exit"
	EventError  = "error"
)

// ExecEvent is one line of an exec stream.
type ExecEvent struct {
	Type string `json:"type"`
	PID  int    `json:"pid,omitempty"`  // start
	Data []byte `json:"data,omitempty"` // stdout, stderr (base64 in JSON: output may be binary)
	// exit:
	ExitCode     int    `json:"exit_code,omitempty"`     // the command's code; 128+n when killed by signal n
	Signal       string `json:"signal,omitempty"`        // e.g. "SIGKILL" when killed by a signal
	TimedOut     bool   `json:"timed_out,omitempty"`     // killed because TimeoutMS expired
	DroppedBytes int64  `json:"dropped_bytes,omitempty"` // output dropped beyond MaxOutputBytes
	DurationMS   int64  `json:"duration_ms,omitempty"`
	// error:
	Error *Error `json:"error,omitempty"`
}

// Error is the body of every non-2xx answer, and of an error event.
type Error struct {
	Code    string `json:"code"`    // machine-readable: bad_request, unauthorized, not_found, busy, internal
	Message string `json:"message"` // for a person: names the input and what is wrong
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Added by the agent side (additive only).

// PathServerInfo answers ServerInfo; it needs no key.
const PathServerInfo = "/server_info"

// More environment variables the agent reads; like the ones above, they are
// never passed to the processes it starts.
const (
	EnvLogFormat = "BERTH_LOG_FORMAT" // "text" (default) or "json"
	EnvLogLevel  = "BERTH_LOG_LEVEL"  // "debug", "info" (default), "warn", "error"
)

// Error codes carried in Error.Code.
const (
	CodeBadRequest       = "bad_request"        // 400: the request names what is wrong
	CodeUnauthorized     = "unauthorized"       // 401: missing or wrong key
	CodeNotFound         = "not_found"          // 404: no such path
	CodeMethodNotAllowed = "method_not_allowed" // 405: path exists, method does not
	CodeTooLarge         = "too_large"          // 413: request body over the agent's limit
	CodeConflict         = "conflict"           // 409: valid request at odds with the current state (exists, still running, ...)
	CodeBusy             = "busy"               // 429: at the process limit; 409: a session's command still runs
	CodeInternal         = "internal"           // 500: a fault of the agent, never of the caller
	CodeUnavailable      = "unavailable"        // 503: the agent is shutting down
)

// ServerInfo is the answer of GET /server_info.
type ServerInfo struct {
	Version       string  `json:"version"`
	UptimeSeconds float64 `json:"uptime_seconds"`
	// IdleSeconds is the time since the last keyed request ended; 0 while a
	// keyed request or a started process is running.
	IdleSeconds float64 `json:"idle_seconds"`
	UserID      int     `json:"user_id"`
	GroupID     int     `json:"group_id"`
	User        string  `json:"user"`
	Workdir     string  `json:"workdir"`
	Processes   int     `json:"processes"` // processes the agent started that are still running

	// Resources of the whole sandbox (its cgroup) and its disks; a figure
	// the kernel does not give is 0, a limit that is not set is -1.
	Resources Resources `json:"resources"`
}

// Resources are a sandbox's usage and limits.
type Resources struct {
	MemoryBytes      int64   `json:"memory_bytes"`       // in use, page cache included
	MemoryLimitBytes int64   `json:"memory_limit_bytes"` // -1 = none
	CPUSeconds       float64 `json:"cpu_seconds"`        // consumed since the sandbox started
	CPULimit         float64 `json:"cpu_limit"`          // in CPUs; -1 = none
	Pids             int64   `json:"pids"`
	PidsLimit        int64   `json:"pids_limit"` // -1 = none
	Disks            []Disk  `json:"disks"`      // of / and of the workdir
}

// Disk is the space of one file system.
type Disk struct {
	Path       string `json:"path"`
	TotalBytes int64  `json:"total_bytes"`
	FreeBytes  int64  `json:"free_bytes"` // available to the sandbox user
}
