package agentapi

import (
	"net/url"
	"strings"
	"time"
)

// Paths of persistent shell sessions. {name} is a session name (see
// SessionNameRules); SessionPath fills it in.
const (
	PathSessions      = "/api/v1/sessions"               // POST SessionCreateRequest → 201 SessionInfo; GET → SessionList
	PathSession       = "/api/v1/sessions/{name}"        // GET → SessionInfo; DELETE → 204, kills the session
	PathSessionExec   = "/api/v1/sessions/{name}/exec"   // POST SessionExecRequest, streams SessionEvent as NDJSON
	PathSessionInput  = "/api/v1/sessions/{name}/input"  // POST SessionInputRequest, streams SessionEvent as NDJSON
	PathSessionOutput = "/api/v1/sessions/{name}/output" // GET ?timeout_ms=&no_output_timeout_ms=, streams SessionEvent
)

// SessionPath is one of the PathSession* paths with the name filled in.
func SessionPath(path, name string) string {
	return strings.Replace(path, "{name}", url.PathEscape(name), 1)
}

// SessionNameRules says what a session name may be; the agent checks it.
const SessionNameRules = "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"

// Error codes of sessions, carried in Error.Code with status 409.
const (
	// CodeExists: POST /api/v1/sessions for a name whose shell is running.
	CodeExists = "exists"
	// CodeIdle: input or output asked of a session that runs no command.
	CodeIdle = "idle"
)

// Controls that SessionInputRequest.Control sends, as a terminal's keys do.
const (
	ControlInterrupt = "C-c" // Ctrl-C: SIGINT to the foreground job
	ControlEOF       = "C-d" // Ctrl-D: end of file for the command reading the terminal
	ControlSuspend   = "C-z" // Ctrl-Z: SIGTSTP to the foreground job, which stops
)

// SessionOptions set up a session's shell when it starts.
type SessionOptions struct {
	// Shell is a program name or path; default bash when the image has it,
	// else sh.
	Shell string            `json:"shell,omitempty"`
	Cwd   string            `json:"cwd,omitempty"` // where the shell starts: absolute, or relative to the workdir
	Env   map[string]string `json:"env,omitempty"` // added to the sandbox user's environment
}

// SessionCreateRequest is the body of POST /api/v1/sessions.
type SessionCreateRequest struct {
	Name string `json:"name"`
	SessionOptions
}

// SessionExecRequest runs one command line in a session's shell. A session
// that does not exist, or whose shell has exited, is started first.
type SessionExecRequest struct {
	// Command is shell text: several lines, here-documents, functions... It
	// runs in the session's shell itself, so cd, exported variables,
	// functions and aliases persist. Empty: read more output of the running
	// command, as GET .../output does.
	Command string `json:"command,omitempty"`
	// TimeoutMS: after this many milliseconds the call returns with the
	// output so far and Running set; the command goes on. 0: no limit.
	TimeoutMS int64 `json:"timeout_ms,omitempty"`
	// NoOutputTimeoutMS: the call returns the same way once the command has
	// printed nothing for this many milliseconds. 0: no limit.
	NoOutputTimeoutMS int64 `json:"no_output_timeout_ms,omitempty"`
	// MaxOutputBytes caps the command's stdout+stderr together, over all
	// the calls that read it; 0 means the agent's default.
	MaxOutputBytes int64 `json:"max_output_bytes,omitempty"`
	// Create is used only when this call starts the session's shell.
	Create *SessionOptions `json:"create,omitempty"`
}

// SessionInputRequest sends input to the command running in a session, then
// streams its output as SessionExecRequest does. Text goes first, then the
// control, if both are set.
type SessionInputRequest struct {
	// Text is typed on the command's terminal, followed by Enter unless
	// NoNewline is set (or Text is empty and Control is set). It may hold tabs and newlines but no other control
	// characters (use Control), and no line longer than MaxInputLine bytes.
	Text      string `json:"text,omitempty"`
	NoNewline bool   `json:"no_newline,omitempty"`
	// Control is one of ControlInterrupt, ControlEOF, ControlSuspend.
	Control           string `json:"control,omitempty"`
	TimeoutMS         int64  `json:"timeout_ms,omitempty"`
	NoOutputTimeoutMS int64  `json:"no_output_timeout_ms,omitempty"`
}

// MaxInputLine is the longest line SessionInputRequest.Text may hold: a
// terminal in line mode keeps at most 4095 bytes of an unfinished line.
const MaxInputLine = 4000

// SessionOutputRequest is the query of GET .../output.
type SessionOutputRequest struct {
	TimeoutMS         int64
	NoOutputTimeoutMS int64
}

// SessionEvent is one line of a session stream: an ExecEvent with a few
// more fields. The stream is a start event, stdout/stderr events, and one
// final exit event (or error). When the call ends before the command does
// (a timeout), the final event is an exit event with Running set and no
// exit code.
type SessionEvent struct {
	ExecEvent
	Session string `json:"session,omitempty"` // start: the session's name
	// NewSession (start): this call started the session's shell, because
	// the session did not exist or its shell had exited.
	NewSession bool `json:"new_session,omitempty"`
	// Running (exit): the command is still running; read on with
	// GET .../output or an exec with an empty command, answer it with
	// POST .../input, or interrupt it with control "C-c".
	Running bool `json:"running,omitempty"`
	// NoOutputTimeout (exit, with Running): the call ended because the
	// command printed nothing for NoOutputTimeoutMS.
	NoOutputTimeout bool `json:"no_output_timeout,omitempty"`
	// ShellExited (exit): the command ended the shell (exit, exec, a
	// signal); ExitCode and Signal are the shell's. The next exec starts a
	// new shell.
	ShellExited bool `json:"shell_exited,omitempty"`
	// Cwd (exit): the shell's working directory after the command.
	Cwd string `json:"cwd,omitempty"`
}

// SessionInfo describes a session.
type SessionInfo struct {
	Name    string    `json:"name"`
	Shell   string    `json:"shell"`
	PID     int       `json:"pid"`
	Created time.Time `json:"created"`
	// Alive is false once the shell has exited; ExitCode and Signal are then
	// its status, and the next exec starts a new shell.
	Alive    bool   `json:"alive"`
	ExitCode int    `json:"exit_code,omitempty"`
	Signal   string `json:"signal,omitempty"`
	Cwd      string `json:"cwd,omitempty"` // the shell's working directory, while it runs
	// Command is the running command, or the last one until its result has
	// been read.
	Command *SessionCommand `json:"command,omitempty"`
}

// SessionCommand is a command of a session.
type SessionCommand struct {
	Command  string    `json:"command"` // its first 200 bytes
	Started  time.Time `json:"started"`
	Running  bool      `json:"running"`
	ExitCode int       `json:"exit_code,omitempty"` // when it has finished
}

// SessionList is the answer of GET /api/v1/sessions, sorted by name.
type SessionList struct {
	Sessions []SessionInfo `json:"sessions"`
}
