// Package docker runs sandboxes as containers on a Docker engine: it
// implements sandbox.Runtime with the Engine API (github.com/moby/moby/client).
//
// Docker is the source of truth. Every container berth makes carries labels
// (see sandbox.Label*), and every call builds its view from them, so two berth
// processes, or berth after a restart, see the same sandboxes.
package docker

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/ports"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Engine is the part of the Docker client the runtime uses.
type Engine interface {
	ContainerCreate(ctx context.Context, opts client.ContainerCreateOptions) (client.ContainerCreateResult, error)
	ContainerStart(ctx context.Context, id string, opts client.ContainerStartOptions) (client.ContainerStartResult, error)
	ContainerInspect(ctx context.Context, id string, opts client.ContainerInspectOptions) (client.ContainerInspectResult, error)
	ContainerList(ctx context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error)
	ContainerPause(ctx context.Context, id string, opts client.ContainerPauseOptions) (client.ContainerPauseResult, error)
	ContainerUnpause(ctx context.Context, id string, opts client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error)
	ContainerStop(ctx context.Context, id string, opts client.ContainerStopOptions) (client.ContainerStopResult, error)
	ContainerRemove(ctx context.Context, id string, opts client.ContainerRemoveOptions) (client.ContainerRemoveResult, error)
	ContainerLogs(ctx context.Context, id string, opts client.ContainerLogsOptions) (client.ContainerLogsResult, error)
	ContainerWait(ctx context.Context, id string, opts client.ContainerWaitOptions) client.ContainerWaitResult
	ContainerRename(ctx context.Context, id string, opts client.ContainerRenameOptions) (client.ContainerRenameResult, error)
	NetworkConnect(ctx context.Context, network string, opts client.NetworkConnectOptions) (client.NetworkConnectResult, error)
	NetworkInspect(ctx context.Context, network string, opts client.NetworkInspectOptions) (client.NetworkInspectResult, error)
	NetworkCreate(ctx context.Context, name string, opts client.NetworkCreateOptions) (client.NetworkCreateResult, error)
}

// ImageResolver finds or makes a sandbox's runtime image.
type ImageResolver interface {
	Resolve(ctx context.Context, spec sandbox.ImageSpec) (image.Result, error)
}

// PortAllocator hands out host ports that no other berth process holds.
type PortAllocator interface {
	Allocate(ctx context.Context, r ports.Range, owner string, exclude ...int) (int, error)
	Release(port int, owner string) error
	ReleaseOwner(owner string) error
}

// Options configure a Runtime.
type Options struct {
	Images ImageResolver
	Ports  PortAllocator
	Ranges ports.Ranges // host port ranges (default: the seed's, for this OS)
	// AgentHost is the host name or address where published ports are
	// reached; "" derives it from the engine's address and the bind address.
	AgentHost   string
	DaemonHost  string        // the engine's address, e.g. unix:///var/run/docker.sock
	StateDir    string        // berth's per-machine state (name locks)
	StopTimeout time.Duration // grace between SIGTERM and SIGKILL on stop (default 10s)
	HTTPClient  *http.Client  // for agent calls; nil = a keep-alive client
	// ImageCacheTTL is how long a resolved runtime image is reused without
	// asking the engine (0 = 30s, negative = resolve on every create).
	ImageCacheTTL time.Duration
	Logger        *slog.Logger
	// LogOutput, if set, receives container logs while a create waits for
	// readiness with Spec.Debug (in addition to the debug log).
	LogOutput io.Writer
}

// Runtime is sandbox.Runtime on a Docker engine.
type Runtime struct {
	engine Engine
	opts   Options
	log    *slog.Logger
	http   *http.Client
	images *imageCache
	agents *agentClients

	tagOnce sync.Once
	tag     string // of the state dir, on pooled containers (stateTag)
}

var _ sandbox.Runtime = (*Runtime)(nil)

// New returns a Runtime using engine.
func New(engine Engine, opts Options) *Runtime {
	if opts.Ranges == (ports.Ranges{}) {
		opts.Ranges = DefaultRanges()
	}
	if opts.StopTimeout == 0 {
		opts.StopTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	hc := opts.HTTPClient
	if hc == nil {
		hc = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}}
	}
	ttl := opts.ImageCacheTTL
	if ttl == 0 {
		ttl = defaultImageCacheTTL
	}
	return &Runtime{engine: engine, opts: opts, log: log, http: hc, images: newImageCache(ttl), agents: newAgentClients(hc)}
}

// HTTPClient is the client the runtime uses to reach agents, for callers that
// talk to a sandbox's agent themselves.
func (r *Runtime) HTTPClient() *http.Client { return r.http }

// Connect makes a Docker client from the environment (DOCKER_HOST and
// friends), negotiates the API version and checks that the engine answers.
// Its error says which address was tried and how to start Docker.
func Connect(ctx context.Context) (*client.Client, error) {
	c, err := client.New(client.FromEnv)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", sandbox.ErrUnavailable, err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Ping(pctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		c.Close()
		return nil, unreachable(c.DaemonHost(), err)
	}
	return c, nil
}

func unreachable(host string, err error) error {
	via := "the default socket"
	if v := os.Getenv("DOCKER_HOST"); v != "" {
		via = "DOCKER_HOST"
	}
	return fmt.Errorf("%w: cannot reach the Docker engine at %s (from %s): %v\n"+
		"  start it (`sudo systemctl start docker`, or `sudo dockerd &` where there is no systemd),\n"+
		"  or point DOCKER_HOST at a running engine", sandbox.ErrUnavailable, host, via, err)
}

// DefaultRanges are the seed's host port ranges for this machine (other
// ones on Windows and WSL2, whose kernels reserve ports from 49152).
func DefaultRanges() ports.Ranges { return ports.DefaultRanges(runtime.GOOS, kernelRelease()) }

// kernelRelease is uname -r, to tell WSL2 (which needs other port ranges).
func kernelRelease() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return ""
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}
