package agent

import (
	"context"
	"net/http"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

func (s *Server) handleServerInfo(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, s.serverInfo(r.Context(), time.Now()))
}

// serverInfo gathers what GET /server_info shows.
func (s *Server) serverInfo(_ context.Context, now time.Time) agentapi.ServerInfo {
	procs := s.procs.count()
	idle := 0.0
	if s.active.Load() == 0 && procs == 0 {
		idle = now.Sub(time.Unix(0, s.lastEnd.Load())).Seconds()
		idle = max(idle, 0)
	}
	return agentapi.ServerInfo{
		Version:       s.opts.Version,
		UptimeSeconds: now.Sub(s.started).Seconds(),
		IdleSeconds:   idle,
		UserID:        s.user.UID,
		GroupID:       s.user.GID,
		User:          s.user.Name,
		Workdir:       s.opts.Workdir,
		Processes:     procs,
		Resources:     resources(cgroupRoot, s.opts.Workdir),
	}
}
