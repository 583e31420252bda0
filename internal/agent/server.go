package agent

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// Server is the agent's HTTP API over one sandbox user and workdir.
type Server struct {
	opts    Options
	log     *slog.Logger
	user    Identity
	cred    *syscall.Credential
	baseEnv atomic.Pointer[[]string] // children's environment; replaced by POST /api/v1/meta
	shell   string
	keySum  [sha256.Size]byte
	procs   *processTable
	started time.Time

	// Features that keep state across requests; each lives in its own file.
	sessions *sessionTable // sessions.go: persistent shell sessions
	bg       *bgTable      // background.go: background processes
	users    *userThreads  // files_user.go: file operations as the user; nil when cred is

	// Activity of keyed requests, for idle_seconds.
	active  atomic.Int64
	lastEnd atomic.Int64 // unix nanoseconds
}

// NewServer prepares the sandbox (user, workdir) and returns the server;
// serve its Handler. Close kills what it started.
func NewServer(ctx context.Context, opts Options) (*Server, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	id, err := opts.SetupUser(ctx, opts.UserID)
	if err != nil {
		return nil, fmt.Errorf("set up user %d: %w", opts.UserID, err)
	}
	if err := prepareWorkdir(opts.Workdir, id); err != nil {
		return nil, err
	}
	for _, dir := range opts.OwnPaths {
		if err := os.Chown(dir, id.UID, id.GID); err != nil && os.Geteuid() == 0 {
			opts.Logger.Warn("giving a mount to the sandbox user", "path", dir, "err", err)
		}
	}
	cred, err := credential(id)
	if err != nil {
		return nil, err
	}
	if id.Shell == "" {
		id.Shell = opts.Shell
	}
	// Threads the agent may need later, made while the sandbox is empty
	// (see files_user.go).
	reserveThreads(reservedThreads)
	var users *userThreads
	if cred != nil {
		if users, err = startUserThreads(id.UID, id.GID, pidsRoomFunc(cgroupRoot)); err != nil {
			return nil, fmt.Errorf("act as user %d: %w", id.UID, err)
		}
	}
	s := &Server{
		users:   users,
		opts:    opts,
		log:     opts.Logger,
		user:    id,
		cred:    cred,
		shell:   opts.Shell,
		keySum:  sha256.Sum256([]byte(opts.Key)),
		procs:   newProcessTable(),
		started: time.Now(),
	}
	env := baseEnv(opts.Environ, id)
	s.baseEnv.Store(&env)
	s.sessions = newSessionTable(s)
	s.bg = newBgTable(s)
	s.lastEnd.Store(s.started.UnixNano())
	s.log.Info("agent ready", "user", id.Name, "uid", id.UID, "gid", id.GID,
		"home", id.Home, "workdir", opts.Workdir, "shell", s.shell, "version", opts.Version)
	return s, nil
}

// prepareWorkdir creates the workdir and, when the agent is root, gives it
// (not its content: it may be a bind mount of the host) to the user.
func prepareWorkdir(dir string, id Identity) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create workdir: %w", err)
	}
	if os.Geteuid() != 0 {
		return nil
	}
	if err := os.Chown(dir, id.UID, id.GID); err != nil {
		return fmt.Errorf("chown workdir %s to %d:%d: %w", dir, id.UID, id.GID, err)
	}
	return nil
}

// credential is what a child runs as: nil for the agent's own user, else
// the user's uid and gid with no supplementary groups.
func credential(id Identity) (*syscall.Credential, error) {
	if id.UID == os.Geteuid() && id.GID == os.Getegid() {
		return nil, nil
	}
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("run commands as %d:%d: the agent runs as uid %d, not root", id.UID, id.GID, os.Geteuid())
	}
	return &syscall.Credential{Uid: uint32(id.UID), Gid: uint32(id.GID), Groups: []uint32{}}, nil
}

// Close refuses new commands and kills the process group of every running
// one. The streams of those commands then end with their exit events.
func (s *Server) Close() {
	if n := s.procs.closeAndKill(); n > 0 {
		s.log.Info("killed running processes", "count", n)
	}
	s.sessions.close()
	s.bg.close()
	if s.users != nil {
		// Not waited for: a job may stream to a client until the HTTP
		// server's shutdown ends its request.
		s.users.stopAll()
	}
}

// route is one endpoint of the API.
type route struct {
	method, path string
	h            http.HandlerFunc
}

// Handler is the agent's whole HTTP API.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	routes := []route{
		{http.MethodGet, agentapi.PathAlive, s.handleAlive},
		{http.MethodGet, agentapi.PathHealth, s.handleHealth},
		{http.MethodGet, agentapi.PathServerInfo, s.handleServerInfo},
		{http.MethodPost, agentapi.PathExec, s.handleExec},
	}
	routes = append(routes, s.sessionRoutes()...)
	routes = append(routes, s.bgRoutes()...)
	routes = append(routes, s.ptyRoutes()...)
	routes = append(routes, s.fileRoutes()...)
	routes = append(routes, s.metaRoutes()...)
	allowed := map[string][]string{}
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+rt.path, rt.h)
		allowed[rt.path] = append(allowed[rt.path], rt.method)
	}
	// Known paths with another method: 405 with Allow, in JSON.
	for path, methods := range allowed {
		if methods[0] == http.MethodGet {
			methods = append(methods, http.MethodHead)
		}
		allow := strings.Join(methods, ", ")
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeError(w, newAPIError(http.StatusMethodNotAllowed, agentapi.CodeMethodNotAllowed,
				"%s %s is not supported; use %s", r.Method, r.URL.Path, allow))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, newAPIError(http.StatusNotFound, agentapi.CodeNotFound, "no such path: %s", r.URL.Path))
	})
	return s.recoverPanics(s.authenticate(mux))
}

// isPublic lists the paths that need no key; every other one does.
func isPublic(path string) bool {
	switch path {
	case agentapi.PathAlive, agentapi.PathHealth, agentapi.PathServerInfo:
		return true
	}
	return false
}

// authenticate checks the key on every non-public path, in constant time,
// and records keyed activity for idle_seconds.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isPublic(r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		key := r.Header.Get(agentapi.HeaderKey)
		if key == "" && r.URL.Path == agentapi.PathPTY {
			// Browsers cannot set headers on a websocket: the key may come in the query.
			key = r.URL.Query().Get(agentapi.QueryKey)
		}
		got := sha256.Sum256([]byte(key))
		if subtle.ConstantTimeCompare(got[:], s.keySum[:]) != 1 {
			msg := "header " + agentapi.HeaderKey + " is missing"
			if key != "" {
				msg = "header " + agentapi.HeaderKey + " does not match the sandbox's key"
			}
			writeError(w, newAPIError(http.StatusUnauthorized, agentapi.CodeUnauthorized, "%s", msg))
			return
		}
		s.active.Add(1)
		defer func() {
			s.lastEnd.Store(time.Now().UnixNano())
			s.active.Add(-1)
		}()
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic of a handler into a logged 500 instead of a
// dropped connection.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			v := recover()
			if v == nil {
				return
			}
			if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
				panic(v)
			}
			s.log.Error("handler panic", "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
			writeError(w, newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, "the agent failed on %s", r.URL.Path))
		}()
		next.ServeHTTP(w, r)
	})
}

type status struct {
	Status string `json:"status"`
}

func (s *Server) handleAlive(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, status{Status: "ok"})
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	if s.procs.isClosed() {
		writeJSON(w, http.StatusServiceUnavailable, status{Status: "shutting down"})
		return
	}
	writeJSON(w, http.StatusOK, status{Status: "ok"})
}

// absWorkdir checks a workdir option.
func absWorkdir(dir string) (string, error) {
	if !filepath.IsAbs(dir) {
		return "", fmt.Errorf("workdir %q is not an absolute path", dir)
	}
	return filepath.Clean(dir), nil
}
