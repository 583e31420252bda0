package agentapi

// PathMeta gives a sandbox what its caller asked for when the sandbox was
// made before the caller came: berth's warm pool starts sandboxes ahead of
// time and, when one is claimed, sets the caller's environment through it.
// POST MetaRequest; answers MetaResponse. It needs the key, and the agent
// accepts it only as the first keyed request of its life (409 conflict
// after any other), so a sandbox's environment never changes under a
// command already started.
const PathMeta = "/api/v1/meta"

// MetaRequest is the body of POST PathMeta.
type MetaRequest struct {
	// Env is added to the environment of every process started from now on
	// (exec, sessions, background processes, PTY), exactly as if it had
	// been in the container's environment: a request's own env still wins.
	// BERTH_* and the agent's contract variables are refused.
	Env map[string]string `json:"env,omitempty"`
}

// MetaResponse is the answer to POST PathMeta.
type MetaResponse struct {
	Env []string `json:"env"` // the names that were set, sorted
}
