package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/berth-dev/berth/internal/audit"
	berthclient "github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/monitor"
	"github.com/berth-dev/berth/internal/pool"
	"github.com/berth-dev/berth/internal/ports"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/security"
	"github.com/berth-dev/berth/internal/server"
)

func (a *app) serveCmd() *cobra.Command {
	var (
		addr            string
		shutdownTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "serve [--addr ADDR]",
		Short: "Serve the REST API (sandboxes, exec, logs, events, agent proxy, metrics) until SIGTERM",
		Long: `Serve berth's REST API (docs/server-api.md) on ADDR (default: server.addr, else 127.0.0.1:7474).

Without [[server.tenants]] tokens in berth.toml, every request is tenant "local"
and only a loopback address is accepted. On SIGTERM or SIGINT the server stops
accepting, closes event streams, lets in-flight requests finish for up to
--shutdown-timeout, and exits; sandboxes keep running.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			// A server reports what it does: info, not only warnings.
			level := slog.LevelInfo
			if a.debug {
				level = slog.LevelDebug
			}
			a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
			cfg, err := a.serverConfig()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("addr") {
				cfg.Addr = addr
			}
			if cfg.Addr == "" {
				cfg.Addr = server.DefaultAddr
			}
			if cmd.Flags().Changed("shutdown-timeout") {
				cfg.ShutdownTimeout = shutdownTimeout
			}
			ctx := cmd.Context()
			rt, err := a.runtime(ctx)
			if err != nil {
				return err
			}
			reg := prometheus.NewRegistry()
			reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
			// The live view: built from the containers' labels, kept
			// current from Docker's events.
			sc := a.cfg.Server
			mon, err := monitor.New(monitor.Options{
				Engine: a.engine, Runtime: rt, Records: rt, Logger: a.log, Registerer: reg,
				HTTPClient: rt.HTTPClient(),
				HealthPath: sc.HealthCheckPath,
				Policy: monitor.Policy{
					MaxRunning: sc.MaxRunning, IdleTimeout: sc.IdleTimeout.Duration,
					IdleAction: sc.IdleAction, TTL: sc.TTL.Duration,
				},
				ReleaseOrphans:    releaseOrphans(a.stateDir, a.ports, a.log),
				ReconcileInterval: sc.ReconcileInterval.Duration,
				CreateGrace:       sc.CreateGrace.Duration,
			})
			if err != nil {
				return err
			}
			// Warm pools ([pool]): creates of a pooled shape claim a ready
			// sandbox; the manager refills them in the background.
			pm, err := a.poolManager(ctx)
			if err != nil {
				return err
			}
			// Every command and file change is judged and recorded.
			an, trail, err := a.securityParts()
			if err != nil {
				return err
			}
			defer trail.Close()
			srv, err := server.New(server.Options{
				Analyzer:     an,
				Audit:        trail,
				Config:       cfg,
				Runtime:      pm.Runtime(),
				Pools:        serverPools{pm},
				View:         mon,
				SpecDefaults: a.specFromConfig,
				Registry:     reg,
				Logger:       a.log,
			})
			if err != nil {
				return err
			}
			if err := srv.CheckAddr(cfg.Addr); err != nil {
				return err
			}
			// The monitor outlives the server's graceful shutdown, which
			// still reads the view.
			monCtx, stopMon := context.WithCancel(context.WithoutCancel(ctx))
			monDone := make(chan struct{})
			go func() {
				defer close(monDone)
				_ = mon.Run(monCtx)
			}()
			if a.debug {
				// The seed's LogStreamer: each sandbox's container log in
				// the server's log, for its whole life.
				go streamSandboxLogs(monCtx, mon, rt, a.log)
			}
			poolDone := make(chan struct{})
			go func() {
				defer close(poolDone)
				if err := pm.Run(monCtx); err != nil {
					a.log.Error("warm pools stopped", "err", err)
				}
			}()
			defer func() { stopMon(); <-monDone; <-poolDone }()
			select {
			case <-mon.Synced():
			case <-ctx.Done():
				return nil
			}
			return srv.ListenAndServe(ctx)
		},
	}
	cmd.Flags().StringVar(&addr, "addr", server.DefaultAddr, "address to listen on, host:port")
	cmd.Flags().DurationVar(&shutdownTimeout, "shutdown-timeout", server.DefaultShutdownTimeout, "how long in-flight requests may finish after SIGTERM")
	return cmd
}

// serverConfig is the [server] table of the configuration.
func (a *app) serverConfig() (server.Config, error) {
	s := a.cfg.Server
	sec := a.cfg.Security
	cfg := server.Config{Addr: s.Addr, ShutdownTimeout: s.ShutdownTimeout.Duration,
		Security: server.SecurityConfig{Policy: sec.Policy, Medium: sec.Medium, ApprovalTimeout: sec.ApprovalTimeout.Duration}}
	for i, t := range s.Tenants {
		mem, err := t.MaxMemoryBytes()
		if err != nil {
			return server.Config{}, fmt.Errorf("server.tenants[%d] (%q): max_memory: %w", i, t.Name, err)
		}
		cfg.Tenants = append(cfg.Tenants, server.Tenant{Name: t.Name, Token: t.Token, TokenSHA256: t.TokenSHA256,
			MaxSandboxes: t.MaxSandboxes, MaxMemory: mem, AllowHostAccess: t.AllowHostAccess, SecurityPolicy: t.SecurityPolicy,
			Admin: t.Admin})
	}
	return cfg, nil
}

// serverPools are the warm pools as berth serve's API shows and resizes
// them (server.Pools): client.PoolStats has pool.ShapeStats's fields, so
// each converts to the other, and a field added to one only fails here.
type serverPools struct{ m *pool.Manager }

func (p serverPools) Stats() []berthclient.PoolStats {
	st := p.m.Stats()
	out := make([]berthclient.PoolStats, len(st))
	for i, s := range st {
		out[i] = berthclient.PoolStats(s)
	}
	return out
}

func (p serverPools) Resize(key string, size int) error { return p.m.Resize(key, size) }

// orphanGrace keeps a sandbox dir younger than this even without a
// container: its create may still be on its way.
const orphanGrace = 10 * time.Minute

// releaseOrphans gives back what sandboxes that are gone still hold: port
// reservations (the allocator asks whether each owner lives) and their dirs
// under the state dir (agent socket, overlay upper/work dirs).
func releaseOrphans(stateDir string, alloc *ports.Allocator, log *slog.Logger) func(context.Context, map[string]bool) error {
	return func(ctx context.Context, live map[string]bool) error {
		freed, err := alloc.Reclaim(ctx)
		if len(freed) > 0 {
			log.Info("reclaimed ports of gone sandboxes", "ports", freed)
		}
		for _, sub := range []string{"sandboxes", "overlay"} {
			entries, _ := os.ReadDir(filepath.Join(stateDir, sub))
			for _, e := range entries {
				info, ierr := e.Info()
				if live[e.Name()] || ierr != nil || time.Since(info.ModTime()) < orphanGrace {
					continue
				}
				if rerr := os.RemoveAll(filepath.Join(stateDir, sub, e.Name())); rerr != nil {
					err = errors.Join(err, rerr)
					continue
				}
				log.Info("removed the dir of a gone sandbox", "dir", filepath.Join(sub, e.Name()))
			}
		}
		return err
	}
}

// securityParts are the analyzer (built-in rules, plus security.rules_file)
// and the audit trail (security.audit_file) of berth serve.
func (a *app) securityParts() (*security.Analyzer, *audit.Trail, error) {
	rules := security.DefaultRules()
	if f := a.cfg.Security.RulesFile; f != "" {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, nil, fmt.Errorf("security.rules_file: %w", err)
		}
		extra, err := security.LoadRules(data)
		if err != nil {
			return nil, nil, fmt.Errorf("security.rules_file %s: %w", f, err)
		}
		rules = security.MergeRules(rules, extra)
	}
	an, err := security.New(rules)
	if err != nil {
		return nil, nil, err
	}
	trail, err := audit.Open(a.cfg.Security.AuditPath(a.stateDir), a.log)
	if err != nil {
		return nil, nil, err
	}
	return an, trail, nil
}

// streamSandboxLogs copies the container log of every sandbox the view
// sees appear into log at debug level, each stream ending when its sandbox
// is removed or ctx ends.
func streamSandboxLogs(ctx context.Context, mon *monitor.Monitor, rt sandbox.Runtime, log *slog.Logger) {
	streams := map[string]context.CancelFunc{}
	start := func(id string) {
		if _, ok := streams[id]; ok {
			return
		}
		sctx, cancel := context.WithCancel(ctx)
		streams[id] = cancel
		go func() {
			rc, err := rt.Logs(sctx, id, sandbox.LogOptions{Follow: true, Tail: "0"})
			if err != nil {
				return
			}
			defer rc.Close()
			go func() { <-sctx.Done(); rc.Close() }()
			sc := bufio.NewScanner(rc)
			for sc.Scan() {
				log.Debug("container log", "sandbox", id, "line", sc.Text())
			}
		}()
	}
	events := mon.Subscribe(ctx)
	for _, sb := range mon.List(monitor.Filter{}) {
		start(sb.ID)
	}
	for e := range events {
		switch e.Type {
		case monitor.EventCreated, monitor.EventReady, monitor.EventResumed:
			start(e.ID)
		case monitor.EventRemoved, monitor.EventStopped: // a resume starts a new stream
			if cancel, ok := streams[e.ID]; ok {
				cancel()
				delete(streams, e.ID)
			}
		}
	}
	for _, cancel := range streams {
		cancel()
	}
}
