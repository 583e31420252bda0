// Package server is berth serve: a REST API over a sandbox.Runtime, with a
// live view of the sandboxes (the monitor), bearer-token tenants with
// quotas, streamed exec and logs, server-sent events, a reverse proxy to
// each sandbox's agent, and Prometheus metrics. docs/server-api.md
// describes the API; internal/client is its Go client and holds the wire
// types.
package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/security"
)

// View is the live view of the sandboxes the server reads from (no Docker
// call per request): the monitor implements it.
type View interface {
	List(f monitor.Filter) []sandbox.Sandbox // newest first
	Get(id string) (sandbox.Sandbox, bool)
	Subscribe(ctx context.Context) <-chan monitor.Event // closed when ctx ends
	Publish(e monitor.Event)
	Touch(id string)
	// Forget drops a sandbox the server has removed, before Docker's
	// event says so.
	Forget(id string)
}

// DefaultAddr is where berth serve listens unless told otherwise.
const DefaultAddr = "127.0.0.1:7474"

// LocalTenant is the tenant of every request when no tenant is configured.
const LocalTenant = "local"

// DefaultShutdownTimeout is how long in-flight requests may run on after a
// shutdown began.
const DefaultShutdownTimeout = 30 * time.Second

// Config is the [server] table of berth.toml.
type Config struct {
	Addr string // host:port; default DefaultAddr
	// ShutdownTimeout bounds how long in-flight requests (execs, creates)
	// may finish after SIGTERM; default DefaultShutdownTimeout.
	ShutdownTimeout time.Duration
	// Tenants, each with a bearer token. None: the server listens on a
	// loopback address only and every request is tenant "local".
	Tenants []Tenant
	// Security is the policy applied to the agents' actions (the
	// [security] table).
	Security SecurityConfig
}

// Tenant is one holder of a bearer token. Its sandboxes carry its name as
// owner (label berth.owner); it sees and touches only those.
type Tenant struct {
	Name string
	// Token is the bearer token in clear; TokenSHA256 its SHA-256 in hex
	// (`printf %s TOKEN | sha256sum`). Set exactly one; the server keeps
	// only the hash either way.
	Token       string
	TokenSHA256 string
	// MaxSandboxes caps the tenant's sandboxes, in any state; 0 = no cap.
	MaxSandboxes int
	// MaxMemory caps the sum of the memory limits of the tenant's
	// sandboxes, in bytes; 0 = no cap. With a cap, every sandbox needs a
	// memory limit (the request's "memory" or the configured default).
	MaxMemory int64
	// AllowHostAccess lets the tenant ask for what reaches the host:
	// volumes (bind, named and overlay mounts), the host network, extra
	// Docker networks and GPUs. The local tenant always may.
	AllowHostAccess bool
	// SecurityPolicy overrides Config.Security.Policy for this tenant:
	// PolicyOff, PolicyAudit, PolicyConfirm or PolicyDeny; "" = the
	// server's. A sandbox's own policy may only tighten it.
	SecurityPolicy string
	// Admin makes the tenant an operator: it may read every tenant's
	// audit records (GET /api/v1/audit?tenant=) and resize the warm pools
	// (PUT /api/v1/pools/{key}). It sees and touches only its own
	// sandboxes, like any tenant. The local tenant is an admin.
	Admin bool
}

// Pools is what the server needs of the warm pools (cmd/berth adapts
// *pool.Manager to it): their state, and a resize that the manager's Run
// then carries out.
type Pools interface {
	// Stats is the state of every pool, in configuration order.
	Stats() []client.PoolStats
	// Resize sets the size of the pool with shape key.
	Resize(key string, size int) error
}

// Options configure a Server.
type Options struct {
	Config  Config
	Runtime sandbox.Runtime // performs the actions
	View    View            // answers the reads
	// SpecDefaults returns the spec the configuration describes (what
	// `berth create` starts from); a create request is laid over it. nil:
	// an empty spec with the base image debian:bookworm-slim.
	SpecDefaults func() (sandbox.Spec, error)
	// AgentHTTP calls agents over TCP; nil = a keep-alive client without
	// proxy or overall timeout.
	AgentHTTP *http.Client
	// Registry gets the server's metrics and serves /metrics; nil = a new
	// registry with the Go and process collectors.
	Registry *prometheus.Registry
	Logger   *slog.Logger
	// Analyzer judges the agents' commands and file operations; nil = the
	// built-in rules (security.DefaultRules).
	Analyzer *security.Analyzer
	// Audit is the trail every judged action is recorded in; nil = none
	// (the policy still applies, and GET /api/v1/audit answers no records).
	Audit *audit.Trail
	// Pools are the warm pools GET /api/v1/pools shows and PUT
	// /api/v1/pools/{key} resizes; nil = none (an empty list).
	Pools Pools
	// Heartbeat is the interval of SSE keep-alive comments; default 15s.
	Heartbeat time.Duration
}

// Server is berth serve's HTTP API. Make it with New; serve it with Serve,
// or mount Handler in a server of your own.
type Server struct {
	opts    Options
	rt      sandbox.Runtime
	view    View
	log     *slog.Logger
	tenants *tenants
	metrics *metrics
	agents  *agents
	quota   *quota
	// analyzer judges actions for the security policy; approvals holds
	// the actions waiting under PolicyConfirm.
	analyzer *security.Analyzer
	// termAnalyzer judges lines typed into terminals: analyzer's rules
	// and security.TerminalRules.
	termAnalyzer *security.Analyzer
	// sessionCwds is where shell sessions' last commands left them.
	sessionCwds sessionCwds
	approvals   *approvals
	handler     http.Handler
	mux         *http.ServeMux

	// streams ends when a shutdown begins: event streams and log follows
	// close then; execs run on until the shutdown deadline.
	streams     context.Context
	stopStreams context.CancelFunc
	inflight    sync.WaitGroup
	// background counts the goroutines requests leave behind (following
	// a background process for the audit trail); they end when streams
	// does, and Serve waits for them after the requests.
	background   sync.WaitGroup
	processWaits atomic.Int64  // processes followed now
	processWait  time.Duration // one wait call's length (tests shorten it); 0 = processWaitSlice
}

// New checks the configuration and builds the server.
func New(opts Options) (*Server, error) {
	if opts.Runtime == nil || opts.View == nil {
		return nil, errors.New("server: a Runtime and a View are required")
	}
	if opts.Config.Addr == "" {
		opts.Config.Addr = DefaultAddr
	}
	if opts.Config.ShutdownTimeout <= 0 {
		opts.Config.ShutdownTimeout = DefaultShutdownTimeout
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = 15 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.SpecDefaults == nil {
		opts.SpecDefaults = func() (sandbox.Spec, error) {
			return sandbox.Spec{Image: sandbox.ImageSpec{Base: "debian:bookworm-slim"}}, nil
		}
	}
	if err := opts.Config.Security.check(); err != nil {
		return nil, err
	}
	for _, t := range opts.Config.Tenants {
		if err := checkPolicy(t.SecurityPolicy); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", t.Name, err)
		}
	}
	if opts.Analyzer == nil {
		a, err := security.New(security.DefaultRules())
		if err != nil {
			return nil, fmt.Errorf("server: built-in security rules: %w", err)
		}
		opts.Analyzer = a
	}
	ts, err := newTenants(opts.Config.Tenants)
	if err != nil {
		return nil, err
	}
	reg := opts.Registry
	if reg == nil {
		reg = newRegistry()
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	term, err := security.New(security.MergeRules(opts.Analyzer.Rules(), security.TerminalRules()))
	if err != nil {
		return nil, fmt.Errorf("server: the terminal's rules: %w", err)
	}
	s := &Server{
		opts:    opts,
		rt:      opts.Runtime,
		view:    opts.View,
		log:     opts.Logger,
		tenants: ts,
		metrics: m,
		agents:  newAgents(opts.AgentHTTP),
		quota:   newQuota(),

		analyzer:     opts.Analyzer,
		termAnalyzer: term,
		approvals:    newApprovals(),
	}
	s.agents.onErr = s.writeError
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.mux = s.routes(reg)
	s.handler = s.middleware(s.mux)
	s.endStalePending()
	return s, nil
}

// Handler is the server's whole HTTP API.
func (s *Server) Handler() http.Handler { return s.handler }

// CheckAddr refuses a non-loopback listen address when no tenant (no
// token) is configured: without tokens, anyone who reaches the port
// drives the sandboxes.
func (s *Server) CheckAddr(addr string) error {
	if !s.tenants.open() {
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("server address %q: %w", addr, err)
	}
	if !isLoopback(host) {
		return fmt.Errorf("server address %q is not a loopback address, and no tenant token is configured: "+
			"anyone who reaches it could run commands in your sandboxes. Listen on 127.0.0.1 or ::1, "+
			"or add [[server.tenants]] with tokens to berth.toml", addr)
	}
	return nil
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ListenAndServe listens on the configured address (refusing a
// non-loopback one without tokens) and serves until ctx ends; see Serve.
func (s *Server) ListenAndServe(ctx context.Context) error {
	addr := s.opts.Config.Addr
	if err := s.CheckAddr(addr); err != nil {
		return err
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("server: listen on %s: %w", addr, err)
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then shuts down gracefully: it stops
// accepting, closes event streams and log follows at once, lets in-flight
// requests (execs, creates) finish until the shutdown timeout, then
// cancels what is left and returns once every handler has returned (and
// every background process the audit trail followed was let go).
// Sandboxes are never stopped or removed. It returns nil after a shutdown
// asked by ctx.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	if s.tenants.open() {
		s.log.Warn("no tenant tokens configured: every request is tenant \"local\", serving on loopback only", "addr", ln.Addr().String())
	} else {
		s.log.Info("serving with bearer-token tenants", "addr", ln.Addr().String(), "tenants", s.tenants.names())
	}
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return base },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		s.stopStreams()
		cancelBase()
		s.inflight.Wait()
		s.background.Wait()
		return fmt.Errorf("server: %w", err)
	case <-ctx.Done():
	}
	timeout := s.opts.Config.ShutdownTimeout
	s.log.Info("shutting down: no new requests; in-flight ones may finish", "timeout", timeout)
	s.stopStreams()
	sctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	err := hs.Shutdown(sctx)
	if err == nil {
		// Shutdown does not wait for hijacked connections (agent
		// websockets): wait for their handlers too, within the deadline.
		err = waitGroup(sctx, &s.inflight)
	}
	if err != nil {
		s.log.Warn("shutdown deadline passed: cancelling the requests still running")
	}
	cancelBase()
	s.inflight.Wait()
	s.background.Wait() // ended with streams
	_ = hs.Close()
	<-errc
	s.agents.closeIdle()
	s.log.Info("server stopped; sandboxes left as they are")
	return nil
}

// waitGroup waits for wg until ctx ends.
func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
