package server

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/berth-dev/berth/internal/client"
)

// route is one entry of the API: method "" matches every method (the agent
// proxy). public routes need no token.
type route struct {
	method, path string
	public       bool
	handle       func(*Server, http.ResponseWriter, *http.Request)
}

// routeTable is every route of the API; docs/server-api.md and the OpenAPI
// document (openapi.json) describe the same ones, which a test checks.
var routeTable = []route{
	{"GET", client.PathHealth, true, (*Server).handleHealth},
	{"GET", client.PathOpenAPI, true, (*Server).handleOpenAPI},
	{"POST", client.PathSandboxes, false, (*Server).handleCreate},
	{"GET", client.PathSandboxes, false, (*Server).handleList},
	{"POST", client.PathBatchGet, false, (*Server).handleBatchGet},
	{"GET", client.PathBatchGet, false, (*Server).handleBatchGet},
	{"GET", client.PathSandboxes + "/{id}", false, (*Server).handleGet},
	{"DELETE", client.PathSandboxes + "/{id}", false, (*Server).handleRemove},
	{"POST", client.PathSandboxes + "/{id}/pause", false, (*Server).handlePause},
	{"POST", client.PathSandboxes + "/{id}/resume", false, (*Server).handleResume},
	{"POST", client.PathSandboxes + "/{id}/stop", false, (*Server).handleStop},
	{"POST", client.PathSandboxes + "/{id}/exec", false, (*Server).handleExec},
	{"GET", client.PathSandboxes + "/{id}/logs", false, (*Server).handleLogs},
	{"GET", client.PathEvents, false, (*Server).handleEvents},
	{"GET", client.PathAudit, false, (*Server).handleAudit},
	{"GET", client.PathApprovals, false, (*Server).handleApprovals},
	{"POST", client.PathApprovals + "/{id}", false, (*Server).handleApprove},
	{"GET", client.PathPools, false, (*Server).handlePools},
	{"PUT", client.PathPools + "/{key}", false, (*Server).handleResizePool},
	{"", client.PathSandboxes + "/{id}" + client.AgentSuffix + "/{path...}", false, (*Server).handleAgent},
}

// metricsRoute is served by promhttp, outside the table's handlers.
const metricsRoute = client.PathMetrics

// allMethods are tried to tell a 405 from a 404.
var allMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}

// publicPaths need no token.
func isPublic(pattern string) bool {
	if pattern == "GET "+metricsRoute {
		return true
	}
	for _, rt := range routeTable {
		if rt.public && rt.method+" "+rt.path == pattern {
			return true
		}
	}
	return false
}

func (s *Server) routes(reg *prometheus.Registry) *http.ServeMux {
	mux := http.NewServeMux()
	for _, rt := range routeTable {
		h := rt.handle
		pattern := rt.path
		if rt.method != "" {
			pattern = rt.method + " " + rt.path
		}
		mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) { h(s, w, r) })
	}
	mux.Handle("GET "+metricsRoute, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("/", s.handleNoRoute)
	return mux
}

// handleNoRoute answers 405 (with Allow) when the path exists for other
// methods, else 404, in JSON like every other answer.
func (s *Server) handleNoRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range allMethods {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, p := s.mux.Handler(r2); p != "/" && p != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.metrics.errors.WithLabelValues(client.CodeMethodNotAllowed).Inc()
		writeJSON(w, http.StatusMethodNotAllowed, client.Error{Code: client.CodeMethodNotAllowed,
			Message: fmt.Sprintf("%s %s: method not allowed; use %s", r.Method, r.URL.Path, strings.Join(allow, ", "))})
		return
	}
	s.metrics.errors.WithLabelValues(client.CodeNotFound).Inc()
	writeJSON(w, http.StatusNotFound, client.Error{Code: client.CodeNotFound, Message: fmt.Sprintf("no such path: %s", r.URL.Path)})
}

// middleware counts in-flight requests (for the shutdown), authenticates,
// measures and logs every request.
func (s *Server) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.inflight.Add(1)
		defer s.inflight.Done()
		start := time.Now()
		_, pattern := s.mux.Handler(r)
		route := pattern
		if route == "/" || route == "" {
			route = "other"
		} else if i := strings.IndexByte(route, ' '); i >= 0 {
			route = route[i+1:]
		}
		rec := &recorder{ResponseWriter: w}
		var tname string
		if isPublic(pattern) {
			next.ServeHTTP(rec, r)
		} else if t, err := s.tenants.authenticate(r); err != nil {
			w.Header().Set("WWW-Authenticate", `Bearer realm="berth"`)
			s.writeError(rec, r, err)
		} else {
			tname = t.Name
			next.ServeHTTP(rec, r.WithContext(withTenant(r.Context(), t)))
		}
		status := rec.status
		switch {
		case status == 0 && r.Header.Get("Upgrade") != "":
			status = http.StatusSwitchingProtocols // hijacked by the agent proxy
		case status == 0:
			status = http.StatusOK
		}
		d := time.Since(start)
		s.metrics.requests.WithLabelValues(route, r.Method, strconv.Itoa(status)).Observe(d.Seconds())
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "route", route, "status", status,
			"tenant", tname, "duration", d)
	})
}

// recorder keeps the status a handler answered. Unwrap lets
// http.ResponseController reach Flush and Hijack (streams, websockets).
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// Flush lets code that asserts http.Flusher (httputil.ReverseProxy) flush.
func (r *recorder) Flush() {
	_ = http.NewResponseController(r.ResponseWriter).Flush()
}

// routePatterns lists every routed method and path, for the OpenAPI check.
func routePatterns() []string {
	var out []string
	for _, rt := range routeTable {
		out = append(out, rt.method+" "+rt.path)
	}
	out = append(out, "GET "+metricsRoute)
	slices.Sort(out)
	return out
}
