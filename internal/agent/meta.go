package agent

import (
	"maps"
	"net/http"
	"slices"
	"strings"

	"github.com/berth-dev/berth/internal/agentapi"
)

// metaRoutes serve POST /api/v1/meta: what a sandbox started ahead of time
// (berth's warm pool) gets when a caller claims it.
func (s *Server) metaRoutes() []route {
	return []route{{http.MethodPost, agentapi.PathMeta, s.handleMeta}}
}

// handleMeta sets the caller's environment as the default of every process
// started from now on. It is accepted only as the first keyed request of
// the agent's life: no command has run yet, none is running, and the host
// (which alone knows the key) sends nothing else until the answer, so the
// environment of a running process never changes, and the base env is not
// read while it is replaced.
func (s *Server) handleMeta(w http.ResponseWriter, r *http.Request) {
	var req agentapi.MetaRequest
	if e := decodeJSON(r.Body, s.opts.MaxRequestBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	for k, v := range req.Env {
		switch {
		case k == "":
			writeError(w, badRequest(`"env" has an empty variable name`))
			return
		case strings.ContainsAny(k, "=\x00"):
			writeError(w, badRequest(`"env" name %q contains "=" or a NUL byte`, k))
			return
		case strings.IndexByte(v, 0) >= 0:
			writeError(w, badRequest(`"env" variable %q contains a NUL byte`, k))
			return
		case isReservedEnv(k) || strings.HasPrefix(k, agentEnvPrefix):
			writeError(w, badRequest(`"env" may not set %s: it belongs to the agent`, k))
			return
		}
	}
	// This request is the only keyed one in flight (active counts it) and
	// no keyed request has ended since the start.
	if s.active.Load() != 1 || s.lastEnd.Load() != s.started.UnixNano() || s.procs.count() > 0 {
		writeError(w, newAPIError(http.StatusConflict, agentapi.CodeConflict,
			"the sandbox's environment can only be set before any other keyed request"))
		return
	}
	// Exactly what a container started with this env gives: the agent's
	// environment with the caller's over it, less BERTH_*, with the sandbox
	// user's HOME, USER, LOGNAME and SHELL.
	env := baseEnv(mergeEnv(s.opts.Environ, req.Env), s.user)
	s.baseEnv.Store(&env)
	names := slices.Sorted(maps.Keys(req.Env))
	s.log.Info("environment set by the host", "names", names)
	writeJSON(w, http.StatusOK, agentapi.MetaResponse{Env: names})
}
