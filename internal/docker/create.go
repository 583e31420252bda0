package docker

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/gofrs/flock"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/sandbox"
)

const (
	namePrefix         = "berth-"
	defaultTimeout     = 120 * time.Second
	defaultBindAddress = "127.0.0.1"
	defaultWorkdir     = "/workspace"
	// portAttempts bounds how often a create retries with another port when
	// the engine reports the one it got as taken.
	portAttempts = 5
)

// Create makes a sandbox and returns once its agent answers. If anything
// fails after the container exists, the container is removed and its ports
// released: a failed create leaves nothing behind.
func (r *Runtime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	if err := spec.Validate(); err != nil {
		return sandbox.Sandbox{}, err
	}
	if spec.Timeout == 0 {
		spec.Timeout = defaultTimeout
	}
	if spec.BindAddress == "" {
		spec.BindAddress = defaultBindAddress
	}
	if spec.Owner == "" {
		spec.Owner = "local"
	}
	img, err := r.opts.Images.Resolve(ctx, spec.Image)
	if err != nil {
		return sandbox.Sandbox{}, fmt.Errorf("create sandbox: %w", err)
	}
	id, err := newID()
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	key, err := newKey()
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	log := r.log.With("sandbox", id)

	// Anything reserved from here on is undone if the create fails.
	ok := false
	defer func() {
		if !ok {
			if err := r.opts.Ports.ReleaseOwner(id); err != nil {
				log.Warn("releasing ports of failed create", "err", err)
			}
		}
	}()

	var containerID string
	var port int
	var tried []int
	for attempt := 1; ; attempt++ {
		port, err = r.opts.Ports.Allocate(ctx, r.opts.AgentRange, id, tried...)
		if err != nil {
			return sandbox.Sandbox{}, fmt.Errorf("create sandbox %s: agent port: %w", id, err)
		}
		tried = append(tried, port)
		containerID, err = r.createContainer(ctx, id, key, port, img.Ref, spec)
		if err != nil {
			return sandbox.Sandbox{}, err
		}
		_, err = r.engine.ContainerStart(ctx, containerID, client.ContainerStartOptions{})
		if err == nil {
			break
		}
		r.discard(containerID, log)
		if !isPortTaken(err) || attempt == portAttempts {
			return sandbox.Sandbox{}, fmt.Errorf("%w: create sandbox %s: start container: %v", sandbox.ErrStartFailed, id, err)
		}
		log.Info("agent port taken outside berth, retrying with another", "port", port, "err", err)
		if err := r.opts.Ports.Release(port, id); err != nil {
			log.Warn("releasing a taken port", "port", port, "err", err)
		}
	}

	agentURL := r.agentURL(spec.BindAddress, port)
	if err := r.waitReady(ctx, id, containerID, agentURL, key, spec.Timeout, spec.Debug); err != nil {
		r.discard(containerID, log)
		return sandbox.Sandbox{}, fmt.Errorf("create sandbox %s: %w", id, err)
	}
	sb, err := r.inspect(ctx, containerID)
	if err != nil {
		r.discard(containerID, log)
		return sandbox.Sandbox{}, fmt.Errorf("create sandbox %s: %w", id, err)
	}
	ok = true
	log.Info("sandbox ready", "image", img.Ref, "port", port)
	return sb, nil
}

// createContainer creates (does not start) the container. A name is checked
// for uniqueness under a machine-wide lock held until the container exists.
func (r *Runtime) createContainer(ctx context.Context, id, key string, port int, ref string, spec sandbox.Spec) (string, error) {
	if spec.Name != "" {
		unlock, err := r.lockNames(ctx)
		if err != nil {
			return "", fmt.Errorf("create sandbox %s: %w", id, err)
		}
		defer unlock()
		taken, err := r.engine.ContainerList(ctx, client.ContainerListOptions{
			All:     true,
			Filters: make(client.Filters).Add("label", sandbox.LabelName+"="+spec.Name),
		})
		if err != nil {
			return "", fmt.Errorf("create sandbox %s: check name %q: %w", id, spec.Name, translate(err))
		}
		if len(taken.Items) > 0 {
			return "", fmt.Errorf("%w: create sandbox: name %q is already used by sandbox %s", sandbox.ErrConflict, spec.Name, taken.Items[0].Labels[sandbox.LabelID])
		}
	}

	labels := maps.Clone(spec.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	maps.Copy(labels, map[string]string{
		sandbox.LabelID:           id,
		sandbox.LabelOwner:        spec.Owner,
		sandbox.LabelCreatedBy:    "berth",
		sandbox.LabelImage:        imageName(spec.Image),
		sandbox.LabelRuntimeImage: ref,
		sandbox.LabelAgentPort:    strconv.Itoa(port),
		sandbox.LabelUserID:       strconv.Itoa(spec.UserID),
	})
	if spec.Name != "" {
		labels[sandbox.LabelName] = spec.Name
	}
	if len(spec.Labels) > 0 {
		labels[sandbox.LabelLabelKeys] = strings.Join(slices.Sorted(maps.Keys(spec.Labels)), ",")
	}

	// The caller's env first, then berth's, which the caller cannot override.
	env := make([]string, 0, len(spec.Env)+5)
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, k+"="+spec.Env[k])
	}
	env = append(env,
		agentapi.EnvKey+"="+key,
		agentapi.EnvPort+"="+strconv.Itoa(port),
		agentapi.EnvUserID+"="+strconv.Itoa(spec.UserID),
		agentapi.EnvWorkdir+"="+defaultWorkdir,
	)

	cport, _ := network.PortFrom(uint16(port), network.TCP)
	stopTimeout := int(r.opts.StopTimeout / time.Second)
	cfg := &container.Config{
		Image:        ref,
		Entrypoint:   []string{image.AgentPath},
		Cmd:          []string{},
		Env:          env,
		Labels:       labels,
		WorkingDir:   defaultWorkdir,
		User:         "0", // the agent sets up the sandbox user, then runs every command as that user
		ExposedPorts: network.PortSet{cport: {}},
		StopSignal:   "SIGTERM", // API 1.41 ignores a signal given to stop: set it here
		StopTimeout:  &stopTimeout,
	}
	init := true
	host := &container.HostConfig{
		Init:        &init, // Docker's init reaps orphans and forwards signals to the agent
		SecurityOpt: []string{"no-new-privileges:true"},
	}
	if spec.UseHostNetwork {
		host.NetworkMode = "host"
	} else {
		addr, _ := netip.ParseAddr(spec.BindAddress)
		host.PortBindings = network.PortMap{cport: {{HostIP: addr, HostPort: strconv.Itoa(port)}}}
	}
	res, err := r.engine.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name:       namePrefix + id,
		Config:     cfg,
		HostConfig: host,
	})
	if err != nil {
		return "", fmt.Errorf("create sandbox %s: create container from %s: %w", id, ref, translate(err))
	}
	return res.ID, nil
}

// discard force-removes a container that a failed create made. It runs on
// its own context: the create's may be what failed.
func (r *Runtime) discard(containerID string, log interface{ Warn(string, ...any) }) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := r.engine.ContainerRemove(ctx, containerID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		log.Warn("removing container of failed create", "container", containerID, "err", err)
	}
}

func (r *Runtime) lockNames(ctx context.Context) (func(), error) {
	if r.opts.StateDir == "" {
		return func() {}, nil
	}
	if err := os.MkdirAll(r.opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("name lock: %w", err)
	}
	fl := flock.New(filepath.Join(r.opts.StateDir, "names.lock"))
	if ok, err := fl.TryLockContext(ctx, 20*time.Millisecond); err != nil || !ok {
		return nil, fmt.Errorf("name lock: %w", errors.Join(err, ctx.Err()))
	}
	return func() { _ = fl.Unlock() }, nil
}

// agentURL is where the host reaches an agent published on bind:port.
func (r *Runtime) agentURL(bind string, port int) string {
	host := r.opts.AgentHost
	if host == "" {
		host = bind
		if u, err := url.Parse(r.opts.DaemonHost); err == nil && u.Scheme == "tcp" && u.Hostname() != "" {
			host = u.Hostname() // a remote engine publishes on its own machine
		} else if a, err := netip.ParseAddr(bind); err == nil && a.IsUnspecified() {
			host = "127.0.0.1"
			if a.Is6() {
				host = "::1"
			}
		}
	}
	return "http://" + net.JoinHostPort(host, strconv.Itoa(port))
}

func isPortTaken(err error) bool {
	s := err.Error()
	return strings.Contains(s, "port is already allocated") || strings.Contains(s, "address already in use")
}

func imageName(spec sandbox.ImageSpec) string {
	if spec.Runtime != "" {
		return spec.Runtime
	}
	return spec.Base
}

// newID returns a random sandbox id: 16 lower-case hex digits.
func newID() (string, error) {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new sandbox id: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// newKey returns a fresh 256-bit key for a sandbox's agent.
func newKey() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new sandbox key: %w", err)
	}
	return hex.EncodeToString(b), nil
}
