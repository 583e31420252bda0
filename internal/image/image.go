// Package image makes sure a sandbox's runtime image exists: the base image
// plus berth-agent (plus optional extra build steps), tagged by a hash of
// everything that goes into it, so it is built once and rebuilt only when an
// input changes.
package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/gofrs/flock"
	"github.com/moby/moby/client"
	"golang.org/x/sync/singleflight"

	"github.com/berth-dev/berth/internal/sandbox"
)

// Repo is the repository of every runtime image berth builds.
const Repo = "berth-runtime"

// AgentPath is where berth-agent sits inside a runtime image.
const AgentPath = "/opt/berth/berth-agent"

// Labels on runtime images.
const (
	LabelRuntime  = "berth.runtime"
	LabelBase     = "berth.base"
	LabelBaseID   = "berth.base-id"
	LabelAgentSum = "berth.agent-sha256"
)

// Docker is the part of the Docker client this package uses.
type Docker interface {
	ImageInspect(ctx context.Context, ref string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error)
	ImagePull(ctx context.Context, ref string, opts client.ImagePullOptions) (client.ImagePullResponse, error)
	ImageBuild(ctx context.Context, buildContext io.Reader, opts client.ImageBuildOptions) (client.ImageBuildResult, error)
	ImageList(ctx context.Context, opts client.ImageListOptions) (client.ImageListResult, error)
}

// Options configure a Resolver.
type Options struct {
	AgentBinary string       // path of the static berth-agent binary to put in images
	LockDir     string       // where cross-process build locks live
	Progress    io.Writer    // pull and build progress; nil = discard
	Terminal    bool         // Progress is a terminal: draw per-layer bars
	Logger      *slog.Logger // nil = discard
}

// Resolver finds, pulls or builds runtime images.
type Resolver struct {
	docker Docker
	opts   Options
	log    *slog.Logger
	builds singleflight.Group

	agentOnce sync.Once
	agentSum  string
	agentErr  error
}

// NewResolver returns a Resolver using docker.
func NewResolver(docker Docker, opts Options) *Resolver {
	if opts.Progress == nil {
		opts.Progress = io.Discard
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Resolver{docker: docker, opts: opts, log: log}
}

// Result is a resolved runtime image.
type Result struct {
	Ref   string // the image to run
	Built bool   // it was built by this call
	// Pulled is set when the image (or its base) was pulled by this call.
	Pulled bool
}

// Inputs are everything that goes into a runtime image; Tag hashes them.
type Inputs struct {
	BaseID    string // the base image's id (sha256:...), not its name
	AgentSum  string // sha256 of the agent binary
	ExtraDeps string
	BuildArgs map[string]string
}

// Tag is the image reference for these inputs: berth-runtime:<16 hex digits>.
func (in Inputs) Tag() string {
	h := sha256.New()
	fmt.Fprintf(h, "berth-runtime/v1\nbase=%s\nagent=%s\ndeps=%d:%s\n", in.BaseID, in.AgentSum, len(in.ExtraDeps), in.ExtraDeps)
	keys := make([]string, 0, len(in.BuildArgs))
	for k := range in.BuildArgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(h, "arg=%d:%s=%d:%s\n", len(k), k, len(in.BuildArgs[k]), in.BuildArgs[k])
	}
	return Repo + ":" + hex.EncodeToString(h.Sum(nil))[:16]
}

// Resolve returns the runtime image for spec. Order: a configured runtime
// image is used if present, else pulled; otherwise the hashed tag is used if
// present (unless ForceRebuild), else built from the base image, which is
// pulled first if absent. Concurrent calls for the same tag build once, in
// this process and across processes.
func (r *Resolver) Resolve(ctx context.Context, spec sandbox.ImageSpec) (Result, error) {
	if spec.Runtime != "" {
		if _, err := r.docker.ImageInspect(ctx, spec.Runtime); err == nil {
			return Result{Ref: spec.Runtime}, nil
		} else if !cerrdefs.IsNotFound(err) {
			return Result{}, fmt.Errorf("inspect runtime image %s: %w", spec.Runtime, err)
		}
		if err := r.pull(ctx, spec.Runtime); err != nil {
			return Result{}, err
		}
		return Result{Ref: spec.Runtime, Pulled: true}, nil
	}
	if spec.Base == "" {
		return Result{}, fmt.Errorf("%w: neither a runtime image nor a base image is set", sandbox.ErrImage)
	}
	var pulled bool
	base, err := r.docker.ImageInspect(ctx, spec.Base)
	if cerrdefs.IsNotFound(err) {
		if err := r.pull(ctx, spec.Base); err != nil {
			return Result{}, err
		}
		pulled = true
		base, err = r.docker.ImageInspect(ctx, spec.Base)
	}
	if err != nil {
		return Result{}, fmt.Errorf("inspect base image %s: %w", spec.Base, err)
	}
	agentSum, err := r.agentChecksum()
	if err != nil {
		return Result{}, err
	}
	in := Inputs{BaseID: base.ID, AgentSum: agentSum, ExtraDeps: spec.ExtraDeps, BuildArgs: spec.BuildArgs}
	tag := in.Tag()
	if !spec.ForceRebuild {
		if ok, err := r.exists(ctx, tag); err != nil || ok {
			return Result{Ref: tag, Pulled: pulled}, err
		}
	}
	// One build per tag: singleflight inside this process, a file lock across
	// processes. The loser of the race finds the image built and uses it.
	key := tag
	if spec.ForceRebuild {
		key += "+force"
	}
	v, err, _ := r.builds.Do(key, func() (any, error) {
		unlock, err := r.lock(ctx, tag)
		if err != nil {
			return false, err
		}
		defer unlock()
		if !spec.ForceRebuild {
			if ok, err := r.exists(ctx, tag); err != nil || ok {
				return false, err
			}
		}
		return true, r.build(ctx, spec, in, tag)
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Ref: tag, Built: v.(bool), Pulled: pulled}, nil
}

func (r *Resolver) exists(ctx context.Context, ref string) (bool, error) {
	_, err := r.docker.ImageInspect(ctx, ref)
	switch {
	case err == nil:
		return true, nil
	case cerrdefs.IsNotFound(err):
		return false, nil
	default:
		return false, fmt.Errorf("inspect image %s: %w", ref, err)
	}
}

func (r *Resolver) lock(ctx context.Context, tag string) (func(), error) {
	if r.opts.LockDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(r.opts.LockDir, 0o700); err != nil {
		return nil, fmt.Errorf("build lock for %s: %w", tag, err)
	}
	name := "build-" + strings.NewReplacer(":", "-", "/", "-").Replace(tag) + ".lock"
	fl := flock.New(filepath.Join(r.opts.LockDir, name))
	ok, err := fl.TryLockContext(ctx, pollLock)
	if err != nil || !ok {
		return nil, fmt.Errorf("build lock for %s: %w", tag, errors.Join(err, ctx.Err()))
	}
	return func() { _ = fl.Unlock() }, nil
}

// agentChecksum hashes the agent binary once per Resolver.
func (r *Resolver) agentChecksum() (string, error) {
	r.agentOnce.Do(func() {
		if r.opts.AgentBinary == "" {
			r.agentErr = fmt.Errorf("%w: no berth-agent binary configured", sandbox.ErrImage)
			return
		}
		f, err := os.Open(r.opts.AgentBinary)
		if err != nil {
			r.agentErr = fmt.Errorf("%w: berth-agent binary: %v (build it with `make build`, or set BERTH_AGENT_BINARY)", sandbox.ErrImage, err)
			return
		}
		defer f.Close()
		h := sha256.New()
		if _, err := io.Copy(h, f); err != nil {
			r.agentErr = fmt.Errorf("hash berth-agent binary %s: %w", r.opts.AgentBinary, err)
			return
		}
		r.agentSum = hex.EncodeToString(h.Sum(nil))
	})
	return r.agentSum, r.agentErr
}
