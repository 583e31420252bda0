package agentapi

import (
	"net/url"
	"time"
)

// Background processes: started by POST PathProcesses, they run on when the
// client goes away, and the agent keeps their output (stdout and stderr,
// each chunk tagged with its stream) in a bounded buffer, read by offset.
const (
	// PathProcesses lists (GET) and starts (POST ProcessRequest) background
	// processes. One process is at ProcessPath(ref).
	PathProcesses = "/api/v1/processes"

	// Suffixes of ProcessPath(ref) for one process.
	ProcessOutputSuffix = "/output" // GET ?offset=N&follow=1
	ProcessWaitSuffix   = "/wait"   // POST ?timeout_ms=N
	ProcessStdinSuffix  = "/stdin"  // POST StdinRequest
	ProcessSignalSuffix = "/signal" // POST SignalRequest
)

// ProcessPath is the path of one background process. ref is its id, or its
// name (the newest process with that name).
func ProcessPath(ref string) string { return PathProcesses + "/" + url.PathEscape(ref) }

// States of a background process.
const (
	ProcessRunning = "running"
	ProcessExited  = "exited"
)

// Limits of background processes.
const (
	// DefaultProcessBufferBytes is the output kept per process unless
	// ProcessRequest.BufferBytes says otherwise.
	DefaultProcessBufferBytes = 1 << 20
	// MaxProcessBufferBytes is the largest BufferBytes the agent accepts.
	MaxProcessBufferBytes = 64 << 20
)

// ProcessRequest starts a background process. As with ExecRequest, exactly
// one of Argv and Command is set.
type ProcessRequest struct {
	Argv    []string          `json:"argv,omitempty"`
	Command string            `json:"command,omitempty"`
	Cwd     string            `json:"cwd,omitempty"` // absolute, or relative to the workdir
	Env     map[string]string `json:"env,omitempty"` // added to the sandbox user's environment
	// Name is an optional handle: 1-64 of [A-Za-z0-9_.-], starting with a
	// letter or '_'. No two running processes have the same name; the paths
	// of one process accept the name in place of the id.
	Name string `json:"name,omitempty"`
	// BufferBytes is how much output (stdout and stderr together) the agent
	// keeps; older output is dropped. 0 means DefaultProcessBufferBytes.
	BufferBytes int64 `json:"buffer_bytes,omitempty"`
}

// ProcessInfo describes one background process. POST PathProcesses answers
// it with status 201.
type ProcessInfo struct {
	ID      string   `json:"id"` // decimal, unique for the agent's life
	Name    string   `json:"name,omitempty"`
	PID     int      `json:"pid"`
	Argv    []string `json:"argv,omitempty"`
	Command string   `json:"command,omitempty"`
	Cwd     string   `json:"cwd"` // resolved, absolute
	// State is ProcessRunning, or ProcessExited once the process has exited,
	// been reaped and all of its output is in the buffer.
	State    string    `json:"state"`
	ExitCode int       `json:"exit_code"`        // when exited; 128+n when signal n killed it
	Signal   string    `json:"signal,omitempty"` // when a signal killed it, e.g. "SIGTERM"
	Started  time.Time `json:"started"`
	Ended    time.Time `json:"ended,omitzero"` // when the process exited
	// OutputBytes is all the output so far: the offset the next byte gets.
	OutputBytes int64 `json:"output_bytes"`
	// DroppedBytes is the output no longer kept: the offset of the oldest
	// byte still in the buffer.
	DroppedBytes int64 `json:"dropped_bytes"`
	BufferBytes  int64 `json:"buffer_bytes"` // the buffer's size
}

// Running reports whether the process had not exited when p was taken.
func (p ProcessInfo) Running() bool { return p.State == ProcessRunning }

// ProcessList is the answer of GET PathProcesses, oldest first.
type ProcessList struct {
	Processes []ProcessInfo `json:"processes"`
}

// Types of OutputEvent.
const (
	OutputStdout  = EventStdout // data written to stdout
	OutputStderr  = EventStderr // data written to stderr
	OutputDropped = "dropped"   // output the buffer no longer holds was skipped
	OutputExit    = EventExit   // follow only: the process exited, all output was sent
	OutputError   = EventError  // follow only: the agent failed
)

// OutputEvent is one chunk of a process's output, or (when following) a
// note about the stream. Offsets count the bytes of stdout and stderr
// together, in the order the agent read them, from 0 at the start.
type OutputEvent struct {
	Type string `json:"type"`
	// Offset is, for stdout/stderr, the offset of Data's first byte; for
	// dropped, where reading resumes; for exit, the end of the output (the
	// next offset).
	Offset       int64        `json:"offset"`
	Data         []byte       `json:"data,omitempty"`          // stdout, stderr (base64 in JSON)
	DroppedBytes int64        `json:"dropped_bytes,omitempty"` // dropped
	Process      *ProcessInfo `json:"process,omitempty"`       // exit: the final state
	Error        *Error       `json:"error,omitempty"`         // error
}

// ProcessOutput is the answer of GET ProcessPath(ref)+ProcessOutputSuffix
// without follow: what the buffer holds from the asked offset.
type ProcessOutput struct {
	Chunks []OutputEvent `json:"chunks"` // stdout and stderr events, in order
	// NextOffset is the offset to ask for next time: the end of Chunks.
	NextOffset int64 `json:"next_offset"`
	// DroppedBytes is how much output between the asked offset and the
	// first chunk the buffer no longer holds.
	DroppedBytes int64 `json:"dropped_bytes"`
	// Process is the state when the output was read: once it has exited,
	// NextOffset is the end of all output.
	Process ProcessInfo `json:"process"`
}

// StdinRequest writes to a background process's stdin.
type StdinRequest struct {
	Data []byte `json:"data,omitempty"` // base64 in JSON
	EOF  bool   `json:"eof,omitempty"`  // close stdin after Data
}

// StdinResponse answers a StdinRequest.
type StdinResponse struct {
	Written int `json:"written"`
}

// SignalRequest signals a background process's whole process group.
// Signal is a name ("SIGTERM", "TERM", "term") or a number ("15"); on the
// wire a JSON number (15) is accepted too. Empty means SIGTERM.
type SignalRequest struct {
	Signal string `json:"signal,omitempty"`
}
