package agentapi

// PathPTY is an interactive terminal over a websocket: GET with the query
// parameters below, upgraded to a websocket. Binary messages carry terminal
// bytes both ways; text messages carry a PTYControl as JSON.
const PathPTY = "/api/v1/pty"

// Query parameters of PathPTY.
const (
	PTYQueryCols = "cols" // columns, 1-10000; default 80
	PTYQueryRows = "rows" // rows, 1-10000; default 24
	PTYQueryCmd  = "cmd"  // a shell string to run instead of an interactive shell
	PTYQueryCwd  = "cwd"  // absolute, or relative to the workdir; default the workdir
	PTYQueryEnv  = "env"  // NAME=VALUE, repeatable: added to the environment
	// QueryKey carries the key for clients that cannot set a header on a
	// websocket (browsers); Go clients send HeaderKey.
	QueryKey = "session_api_key"
)

// Default size of a terminal.
const (
	DefaultPTYCols = 80
	DefaultPTYRows = 24
	MaxPTYSize     = 10000 // the largest cols or rows
)

// Types of PTYControl.
const (
	PTYResize = "resize" // client → agent: the window's new size
	PTYExit   = "exit"   // agent → client: the shell exited; the agent then closes
)

// PTYControl is a text message of a PTY websocket.
type PTYControl struct {
	Type string `json:"type"`
	// resize:
	Cols int `json:"cols,omitempty"`
	Rows int `json:"rows,omitempty"`
	// exit:
	ExitCode int    `json:"exit_code"`        // 128+n when signal n killed the shell
	Signal   string `json:"signal,omitempty"` // e.g. "SIGKILL"
}
