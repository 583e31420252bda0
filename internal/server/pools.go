package server

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/berth-dev/berth/internal/client"
)

// errNoPool: the server keeps no pool of that shape key.
var errNoPool = errors.New("no such pool")

// poolStats is the state of every pool; none without Options.Pools.
func (s *Server) poolStats() []client.PoolStats {
	if s.opts.Pools == nil {
		return []client.PoolStats{}
	}
	st := s.opts.Pools.Stats()
	if st == nil {
		st = []client.PoolStats{}
	}
	return st
}

// poolOf is the state of the pool with shape key.
func (s *Server) poolOf(key string) (client.PoolStats, bool) {
	for _, st := range s.poolStats() {
		if st.Key == key {
			return st, true
		}
	}
	return client.PoolStats{}, false
}

// handlePools answers GET /api/v1/pools: every pool's state, whoever asks
// (it names no sandbox and no tenant).
func (s *Server) handlePools(w http.ResponseWriter, r *http.Request) {
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		s.writeError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, client.PoolList{Items: s.poolStats()})
}

// handleResizePool answers PUT /api/v1/pools/{key} {"size": N}: an admin
// tenant sets the size of a pool (until the server restarts); the pool
// manager then fills it or removes its extra sandboxes. The answer is the
// pool's state.
func (s *Server) handleResizePool(w http.ResponseWriter, r *http.Request) {
	t := tenantOf(r)
	key := r.PathValue("key")
	if !t.Admin {
		s.writeError(w, r, fmt.Errorf("%w: tenant %q may not resize pool %q: only an admin tenant may (admin = true in [[server.tenants]])",
			errForbidden, t.Name, key))
		return
	}
	if err := checkQuery(r.URL.Query(), nil); err != nil {
		s.writeError(w, r, err)
		return
	}
	var req client.PoolResizeRequest
	if err := decodeJSON(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	switch {
	case req.Size == nil:
		s.writeError(w, r, badRequestf("field \"size\" is missing: want the pool's new size, 0 to %d", client.MaxPoolSize))
		return
	case *req.Size < 0 || *req.Size > client.MaxPoolSize:
		s.writeError(w, r, badRequestf("field \"size\": %d is out of range: want 0 to %d", *req.Size, client.MaxPoolSize))
		return
	}
	if _, ok := s.poolOf(key); !ok {
		s.writeError(w, r, fmt.Errorf("%w %q: GET %s lists the pools and their keys", errNoPool, key, client.PathPools))
		return
	}
	if err := s.opts.Pools.Resize(key, *req.Size); err != nil {
		s.writeError(w, r, fmt.Errorf("resize pool %s to %d: %w", key, *req.Size, err))
		return
	}
	st, _ := s.poolOf(key)
	s.log.Info("pool resized", "pool", key, "size", *req.Size, "tenant", t.Name)
	writeJSON(w, http.StatusOK, st)
}
