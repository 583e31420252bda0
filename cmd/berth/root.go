package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/moby/moby/client"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	berthclient "github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/config"
	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/ports"
	"github.com/berth-dev/berth/internal/sandbox"
)

// app is what every command shares: configuration, logger, and (made on
// first use) the Docker connection and the runtime on it.
type app struct {
	stdout, stderr io.Writer
	ports          *ports.Allocator // made with the runtime
	stateDir       string           // made with the runtime
	configPath     string
	debug          bool
	output         string
	host           string // --host / BERTH_HOST: drive this berth server instead of Docker

	cfg    config.Config
	log    *slog.Logger
	engine *client.Client
	rt     *docker.Runtime
	images *image.Resolver
	remote *berthclient.Client // set when --host / BERTH_HOST names a server
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	a := &app{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:           "berth",
		Short:         "Fast, isolated, disposable Linux sandboxes for AI agents",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return a.init()
		},
		PersistentPostRun: func(*cobra.Command, []string) {
			if a.engine != nil {
				a.engine.Close()
			}
		},
	}
	root.PersistentFlags().StringVar(&a.configPath, "config", "", "config file (default: berth/berth.toml in the user's config dir)")
	root.PersistentFlags().StringVar(&a.host, "host", os.Getenv(berthclient.EnvHost), "drive the berth server at this address (http://HOST:PORT) instead of the local Docker engine; token in BERTH_TOKEN (also BERTH_HOST)")
	root.PersistentFlags().BoolVar(&a.debug, "debug", os.Getenv("DEBUG_RUNTIME") == "1" || os.Getenv("DEBUG_RUNTIME") == "true", "debug logging; stream container logs while waiting for readiness (also DEBUG_RUNTIME=1)")
	root.AddCommand(
		a.createCmd(), a.lsCmd(), a.inspectCmd(), a.execCmd(),
		a.pauseCmd(), a.resumeCmd(), a.stopCmd(), a.rmCmd(),
		a.logsCmd(), a.imageCmd(), a.benchCmd(), a.serveCmd(),
	)
	root.AddCommand(a.processCmds()...)
	root.AddCommand(a.shellCmds()...)
	root.AddCommand(a.cpCmds()...)
	root.AddCommand(a.fileCmds()...)
	root.AddCommand(a.sessionCmds()...)
	root.AddCommand(a.auditCmds()...)
	root.AddCommand(a.poolCmds()...)
	return root
}

func (a *app) init() error {
	level := slog.LevelWarn
	if a.debug {
		level = slog.LevelDebug
	}
	a.log = slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: level}))
	cfg, err := config.Load(a.configPath, os.LookupEnv)
	if err != nil {
		return err
	}
	a.cfg = cfg
	if len(cfg.Ignored) > 0 {
		a.log.Warn("ignoring OpenHands settings that berth does not use", "keys", cfg.Ignored)
	}
	if a.host != "" {
		c, err := berthclient.New(a.host, os.Getenv(berthclient.EnvToken), nil)
		if err != nil {
			return err
		}
		a.remote = c
	}
	return nil
}

// sandboxes is where sandbox actions go: the berth server of --host /
// BERTH_HOST when one is set, else the local Docker runtime.
func (a *app) sandboxes(ctx context.Context) (sandbox.Runtime, error) {
	if a.remote != nil {
		return berthclient.Remote{C: a.remote}, nil
	}
	return a.runtime(ctx)
}

// runtime connects to Docker and builds the runtime, once.
func (a *app) runtime(ctx context.Context) (*docker.Runtime, error) {
	if a.rt != nil {
		return a.rt, nil
	}
	engine, err := docker.Connect(ctx)
	if err != nil {
		return nil, err
	}
	a.engine = engine
	dir, err := stateDir()
	if err != nil {
		return nil, err
	}
	terminal := false
	if f, ok := a.stderr.(*os.File); ok {
		terminal = term.IsTerminal(int(f.Fd()))
	}
	a.images = image.NewResolver(engine, image.Options{
		AgentBinary: agentBinary(),
		LockDir:     filepath.Join(dir, "locks"),
		Progress:    a.stderr,
		Terminal:    terminal,
		Logger:      a.log,
	})
	// The allocator asks the runtime whether a port's owner still exists,
	// to reclaim ports of sandboxes removed behind berth's back.
	var rt *docker.Runtime
	alloc, err := ports.New(ports.Options{
		Dir:      filepath.Join(dir, "ports"),
		BindAddr: a.cfg.Sandbox.RuntimeBindingAddress,
		Alive:    func(ctx context.Context, owner string) (bool, error) { return rt.Exists(ctx, owner) },
		Logger:   a.log,
	})
	if err != nil {
		return nil, err
	}
	ranges, err := a.cfg.Sandbox.PortRanges(docker.DefaultRanges())
	if err != nil {
		return nil, err
	}
	rt = docker.New(engine, docker.Options{
		Ranges:     ranges,
		Images:     a.images,
		Ports:      alloc,
		DaemonHost: engine.DaemonHost(),
		StateDir:   dir,
		Logger:     a.log,
		LogOutput:  a.stderrIfDebug(),
	})
	a.rt, a.ports, a.stateDir = rt, alloc, dir
	return rt, nil
}

func (a *app) stderrIfDebug() io.Writer {
	if a.debug {
		return a.stderr
	}
	return nil
}

// stateDir is berth's per-machine state: port reservations and locks. Every
// berth process on the machine must agree on it, so it does not depend on
// the working directory. BERTH_STATE_DIR overrides it.
func stateDir() (string, error) {
	if d := os.Getenv("BERTH_STATE_DIR"); d != "" {
		return d, nil
	}
	if os.Geteuid() == 0 {
		return "/var/lib/berth", nil
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "berth"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("berth state dir: %w (set BERTH_STATE_DIR)", err)
	}
	return filepath.Join(home, ".local", "state", "berth"), nil
}

// agentBinary finds berth-agent: BERTH_AGENT_BINARY, else next to this
// executable, else on PATH.
func agentBinary() string {
	if p := os.Getenv("BERTH_AGENT_BINARY"); p != "" {
		return p
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "berth-agent")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("berth-agent"); err == nil {
		return p
	}
	return "berth-agent"
}
