// Package agent is berth-agent: the small HTTP server that runs inside
// every sandbox and executes commands for the host. Its wire types and the
// host's client live in package agentapi.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"
)

// Defaults of Options.
const (
	DefaultMaxOutputBytes  = 64 << 20
	DefaultMaxRequestBytes = 64 << 20
	DefaultOutputGrace     = 250 * time.Millisecond
	DefaultShutdownTimeout = 500 * time.Millisecond

	// maxDrain bounds how long output is read after a command exits while
	// a process it left behind keeps writing to its pipes or terminal.
	maxDrain       = 5 * time.Second
	DefaultWorkdir = "/workspace"
	DefaultUserID  = 1000
)

// Options configure the agent. Key, and Addr or Listener, are required.
type Options struct {
	Key      string       // every non-public request must carry it
	Addr     string       // TCP listen address, e.g. ":8000"; "" = none (Socket only)
	Socket   string       // unix socket path to listen on too; "" = none
	Listener net.Listener // used instead of Addr when set (tests)

	UserID   int      // commands run as this uid; 0 = root
	OwnPaths []string // directories given to the user at start (mount roots)
	Workdir  string   // absolute; default /workspace
	Version  string   // shown in /server_info
	Logger   *slog.Logger

	// SetupUser makes sure the account exists; default Accounts{}.Ensure,
	// which appends to /etc/passwd and /etc/group.
	SetupUser UserSetup
	// Environ is the environment children inherit (less BERTH_*);
	// default os.Environ().
	Environ []string
	// Shell runs command strings; default /bin/bash, else /bin/sh.
	Shell string

	MaxOutputBytes  int64         // per command, unless the request says; default 64 MiB
	MaxRequestBytes int64         // request body limit; default 64 MiB
	OutputGrace     time.Duration // reading on after the main process exits; default 250 ms
	ShutdownTimeout time.Duration // for streams to end on shutdown; default 500 ms
}

func (o Options) withDefaults() (Options, error) {
	if o.Key == "" {
		return o, errors.New("agent options: the key is empty")
	}
	if o.UserID < 0 {
		return o, fmt.Errorf("agent options: user id %d is negative", o.UserID)
	}
	if o.Workdir == "" {
		o.Workdir = DefaultWorkdir
	}
	wd, err := absWorkdir(o.Workdir)
	if err != nil {
		return o, fmt.Errorf("agent options: %w", err)
	}
	o.Workdir = wd
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SetupUser == nil {
		o.SetupUser = Accounts{}.Ensure
	}
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	if o.Shell == "" {
		o.Shell = detectShell("/bin/bash", "/bin/sh")
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = DefaultMaxOutputBytes
	}
	if o.MaxRequestBytes <= 0 {
		o.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if o.OutputGrace <= 0 {
		o.OutputGrace = DefaultOutputGrace
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = DefaultShutdownTimeout
	}
	return o, nil
}

// Run prepares the sandbox, serves the API until ctx is done, then kills
// every running command and returns nil within about ShutdownTimeout.
func Run(ctx context.Context, opts Options) error {
	s, err := NewServer(ctx, opts)
	if err != nil {
		return err
	}
	defer s.Close()
	lns, err := s.listeners()
	if err != nil {
		return err
	}
	// Requests see the end of baseCtx: a running exec then kills its command
	// and ends its stream with the exit event.
	baseCtx, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	hs := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		BaseContext:       func(net.Listener) context.Context { return baseCtx },
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, len(lns))
	for _, ln := range lns {
		go func() {
			if err := hs.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				served <- fmt.Errorf("serve on %s: %w", ln.Addr(), err)
				return
			}
			served <- nil
		}()
		s.log.Info("agent listening", "addr", ln.Addr().String())
	}

	select {
	case err := <-served:
		for range lns[1:] {
			<-served
		}
		if err == nil {
			err = errors.New("server closed")
		}
		return err
	case <-ctx.Done():
	}
	s.log.Info("agent stopping")
	s.Close()
	cancelBase()
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn("agent shutdown: closing remaining connections", "err", err)
		hs.Close()
	}
	for range lns {
		<-served
	}
	if err := s.procs.waitEmpty(sctx); err != nil {
		s.log.Warn("agent shutdown", "err", err)
	}
	s.log.Info("agent stopped")
	return nil
}

// listeners opens what the options ask for: the test listener, or TCP on
// Addr and/or a unix socket at Socket (made reachable for the host, which
// bind-mounts its directory; the key still guards every call).
func (s *Server) listeners() ([]net.Listener, error) {
	if s.opts.Listener != nil {
		return []net.Listener{s.opts.Listener}, nil
	}
	var lns []net.Listener
	if s.opts.Addr != "" {
		ln, err := net.Listen("tcp", s.opts.Addr)
		if err != nil {
			return nil, fmt.Errorf("listen on %q: %w", s.opts.Addr, err)
		}
		lns = append(lns, ln)
	}
	if s.opts.Socket != "" {
		_ = os.Remove(s.opts.Socket) // a stale socket of an earlier run
		ln, err := net.Listen("unix", s.opts.Socket)
		if err == nil {
			err = os.Chmod(s.opts.Socket, 0o666)
		}
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("listen on unix socket %s: %w", s.opts.Socket, err)
		}
		lns = append(lns, ln)
	}
	if len(lns) == 0 {
		return nil, errors.New("agent options: neither a TCP address nor a unix socket to listen on")
	}
	return lns, nil
}
