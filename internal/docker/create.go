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
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/mounts"
	"github.com/berth-dev/berth/internal/ports"
	"github.com/berth-dev/berth/internal/sandbox"
)

const (
	namePrefix         = "berth-"
	defaultTimeout     = 120 * time.Second
	defaultBindAddress = "127.0.0.1"
	defaultWorkdir     = "/workspace"
	internalNetwork    = "berth-internal"
	// portAttempts bounds how often a create retries with another port when
	// the engine reports the one it got as taken.
	portAttempts = 5
)

// Create makes a sandbox and returns once its agent answers. If anything
// fails after the container exists, the container is removed, its ports
// released and its directories deleted: a failed create leaves nothing.
func (r *Runtime) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	if err := r.normalize(&spec); err != nil {
		return sandbox.Sandbox{}, err
	}
	if spec.Owner == OwnerPool {
		return sandbox.Sandbox{}, fmt.Errorf("%w: owner %q is reserved for berth's warm pool", sandbox.ErrInvalidSpec, OwnerPool)
	}
	return r.create(ctx, spec, nil)
}

// poolParams make a create one of the warm pool's: its container carries
// the shape and extra labels (not the caller's: it has none yet) and a
// name of its own until a claim renames it.
type poolParams struct {
	shape  string
	labels map[string]string
}

// create makes a sandbox from a normalized spec.
func (r *Runtime) create(ctx context.Context, spec sandbox.Spec, pool *poolParams) (sandbox.Sandbox, error) {
	watch := startWatch(ctx)
	ms, err := parseMounts(spec)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	watch.lap(PhaseValidate)
	ref, cached, err := r.resolveImage(ctx, spec.Image)
	if err != nil {
		return sandbox.Sandbox{}, fmt.Errorf("create sandbox: %w", err)
	}
	watch.lap(PhaseImage)
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
			r.releaseAll(id, log)
		}
	}()
	overlay, err := r.overlays().Prepare(id, ms, -1, -1)
	if err != nil {
		return sandbox.Sandbox{}, fmt.Errorf("%w: create sandbox %s: %v", sandbox.ErrInvalidSpec, id, err)
	}
	volumeLabels := map[string]string{sandbox.LabelID: id, sandbox.LabelOwner: spec.Owner}
	if v, ok := spec.Labels[testRunLabel]; ok {
		volumeLabels[testRunLabel] = v // lets test runs find and remove the volumes they made
	} else if v, ok := pool.extra()[testRunLabel]; ok {
		volumeLabels[testRunLabel] = v
	}
	dmounts := mounts.Docker(ms, overlay, volumeLabels)
	// The agent also listens on a unix socket in a bind-mounted dir: the
	// only way in without a network, and on a local engine the fastest
	// (it skips Docker's port proxy: ~0.8 ms of every call).
	socketDir := ""
	if usesSocket(spec.Network) || r.localEngine() && r.opts.StateDir != "" {
		if socketDir, err = r.sandboxDir(id); err != nil {
			return sandbox.Sandbox{}, fmt.Errorf("create sandbox %s: %w", id, err)
		}
	}
	watch.lap(PhasePrepare)

	var containerID string
	var plan []sandbox.Port
	var taken []int
	for attempt := 1; ; attempt++ {
		plan, err = r.planPorts(ctx, id, spec, taken)
		if err != nil {
			return sandbox.Sandbox{}, fmt.Errorf("create sandbox %s: %w", id, err)
		}
		watch.lap(PhasePorts)
		containerID, err = r.createContainer(ctx, id, key, ref, spec, plan, socketDir, dmounts, pool)
		var gone imageGone
		if errors.As(err, &gone) && cached {
			// The cached runtime image was removed: resolve it again, once.
			log.Info("cached runtime image is gone; resolving it again", "image", ref)
			r.forgetImage(spec.Image)
			if ref, cached, err = r.resolveImage(ctx, spec.Image); err != nil {
				return sandbox.Sandbox{}, fmt.Errorf("create sandbox %s: %w", id, err)
			}
			containerID, err = r.createContainer(ctx, id, key, ref, spec, plan, socketDir, dmounts, pool)
		}
		if err != nil {
			return sandbox.Sandbox{}, err
		}
		watch.lap(PhaseCreate)
		_, err = r.engine.ContainerStart(ctx, containerID, client.ContainerStartOptions{})
		watch.lap(PhaseStart)
		if err == nil {
			break
		}
		r.discard(containerID, log)
		if !isPortTaken(err) || attempt == portAttempts {
			return sandbox.Sandbox{}, fmt.Errorf("%w: create sandbox %s: start container: %v", sandbox.ErrStartFailed, id, explainStart(err))
		}
		// A process outside berth took a port between our test bind and the
		// publish: give every allocated port back and take others.
		log.Info("a port was taken outside berth, retrying with others", "err", err)
		for _, p := range plan {
			if p.Name != "vscode" || spec.VSCodePort == 0 {
				taken = append(taken, p.HostPort)
			}
			if err := r.opts.Ports.Release(p.HostPort, id); err != nil {
				log.Warn("releasing a taken port", "port", p.HostPort, "err", err)
			}
		}
	}

	agentURL := r.agentURL(spec.BindAddress, plan[0].HostPort)
	if socketDir != "" {
		agentURL = "unix://" + filepath.Join(socketDir, socketName)
	}
	if err := r.waitReady(ctx, id, containerID, agentURL, key, spec.Timeout, spec.Debug); err != nil {
		r.discard(containerID, log)
		return sandbox.Sandbox{}, fmt.Errorf("create sandbox %s: %w", id, err)
	}
	watch.lap(PhaseReady)
	sb, err := r.inspect(ctx, containerID)
	if err != nil {
		r.discard(containerID, log)
		return sandbox.Sandbox{}, fmt.Errorf("create sandbox %s: %w", id, err)
	}
	watch.lap(PhaseInspect)
	ok = true
	log.Info("sandbox ready", "image", ref, "network", spec.Network, "agent", agentURL, "pool", pool.shapeKey())
	return sb, nil
}

func (p *poolParams) extra() map[string]string {
	if p == nil {
		return nil
	}
	return p.labels
}

func (p *poolParams) shapeKey() string {
	if p == nil {
		return ""
	}
	return p.shape
}

// imageGone is ContainerCreate's answer when the image does not exist.
type imageGone struct{ err error }

func (e imageGone) Error() string { return e.err.Error() }
func (e imageGone) Unwrap() error { return e.err }

// Normalize validates spec and fills its defaults exactly as Create does,
// so that two specs Create treats alike compare equal (the pool's shapes).
func (r *Runtime) Normalize(spec sandbox.Spec) (sandbox.Spec, error) {
	err := r.normalize(&spec)
	return spec, err
}

// normalize validates the spec and fills its defaults.
func (r *Runtime) normalize(spec *sandbox.Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if _, ok := spec.Labels[LabelPool]; ok {
		return fmt.Errorf("%w: label %q: berth sets this label itself", sandbox.ErrInvalidSpec, LabelPool)
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
	if spec.UseHostNetwork {
		spec.Network = sandbox.NetworkHost
	}
	if spec.Network == "" {
		spec.Network = sandbox.NetworkBridge
	}
	if spec.VSCodePort != 0 {
		spec.VSCode = true
	}
	if usesSocket(spec.Network) && (spec.VSCode || spec.AppPorts > 0 || len(spec.Publish) > 0) {
		return fmt.Errorf("%w: network %q publishes no ports: VS Code, app ports and -p need network bridge or host", sandbox.ErrInvalidSpec, spec.Network)
	}
	if spec.Network == sandbox.NetworkHost && len(spec.Publish) > 0 {
		return fmt.Errorf("%w: with the host network a sandbox's ports are the host's: -p does not apply", sandbox.ErrInvalidSpec)
	}
	return nil
}

// usesSocket tells the network modes where the host cannot reach the agent
// over TCP, and talks to it through a unix socket in a bind-mounted dir.
func usesSocket(network string) bool {
	return network == sandbox.NetworkNone || network == sandbox.NetworkInternal
}

// planPorts reserves the host ports of a sandbox: the agent's first, then
// VS Code's, the app ports and the published ones. Agent, VS Code and app
// ports have the same number inside and out, so a process in the sandbox
// can listen on the number it finds in its environment, on any network.
func (r *Runtime) planPorts(ctx context.Context, id string, spec sandbox.Spec, exclude []int) ([]sandbox.Port, error) {
	rg := r.opts.Ranges
	var plan []sandbox.Port
	alloc := func(name string, rng ports.Range, containerPort int) error {
		p, err := r.opts.Ports.Allocate(ctx, rng, id, exclude...)
		if err != nil {
			return fmt.Errorf("%s port: %w", name, err)
		}
		exclude = append(exclude, p)
		if containerPort == 0 {
			containerPort = p
		}
		plan = append(plan, sandbox.Port{Name: name, HostIP: spec.BindAddress, HostPort: p, Container: containerPort})
		return nil
	}
	if usesSocket(spec.Network) {
		return []sandbox.Port{{Name: "agent"}}, nil // no TCP port at all
	}
	if err := alloc("agent", rg.Agent, 0); err != nil {
		return nil, err
	}
	if spec.VSCodePort != 0 {
		plan = append(plan, sandbox.Port{Name: "vscode", HostIP: spec.BindAddress, HostPort: spec.VSCodePort, Container: spec.VSCodePort})
	} else if spec.VSCode {
		if err := alloc("vscode", rg.VSCode, 0); err != nil {
			return nil, err
		}
	}
	for i, rng := range []ports.Range{rg.App1, rg.App2}[:spec.AppPorts] {
		if err := alloc(fmt.Sprintf("app%d", i+1), rng, 0); err != nil {
			return nil, err
		}
	}
	for _, cp := range spec.Publish {
		if err := alloc(fmt.Sprintf("port-%d", cp), rg.App1, cp); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// portEnv tells the sandbox's processes their ports, as OpenHands does.
func portEnv(plan []sandbox.Port) []string {
	var env []string
	for _, p := range plan {
		switch p.Name {
		case "vscode":
			env = append(env, "VSCODE_PORT="+strconv.Itoa(p.Container))
		case "app1":
			env = append(env, "APP_PORT_1="+strconv.Itoa(p.Container))
		case "app2":
			env = append(env, "APP_PORT_2="+strconv.Itoa(p.Container))
		}
	}
	return env
}

// createContainer creates (does not start) the container. A name is checked
// for uniqueness under a machine-wide lock held until the container exists.
func (r *Runtime) createContainer(ctx context.Context, id, key, ref string, spec sandbox.Spec, plan []sandbox.Port, socketDir string, ms []mount.Mount, pool *poolParams) (string, error) {
	if spec.Name != "" {
		unlock, err := r.lockNames(ctx)
		if err != nil {
			return "", fmt.Errorf("create sandbox %s: %w", id, err)
		}
		defer unlock()
		if err := r.checkName(ctx, spec.Name); err != nil {
			return "", fmt.Errorf("create sandbox %s: %w", id, err)
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
		sandbox.LabelPorts:        formatPorts(plan),
		sandbox.LabelNetwork:      spec.Network,
		sandbox.LabelUserID:       strconv.Itoa(spec.UserID),
	})
	if spec.Name != "" {
		labels[sandbox.LabelName] = spec.Name
	}
	if spec.SecurityPolicy != "" {
		labels[sandbox.LabelSecurityPolicy] = spec.SecurityPolicy
	}
	if len(spec.Labels) > 0 {
		labels[sandbox.LabelLabelKeys] = strings.Join(slices.Sorted(maps.Keys(spec.Labels)), ",")
	}
	name := namePrefix + id
	if pool != nil {
		// Not the caller's labels: they are not listed in label-keys, so a
		// record never shows them.
		for k, v := range pool.labels {
			if _, set := labels[k]; !set {
				labels[k] = v
			}
		}
		labels[LabelPool] = pool.shape
		labels[LabelPoolState] = r.stateTag()
		name = poolNamePrefix + id
	}

	// The caller's env first, then berth's, which the caller cannot override.
	env := make([]string, 0, len(spec.Env)+8)
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		env = append(env, k+"="+spec.Env[k])
	}
	env = append(env, portEnv(plan)...)
	env = append(env,
		agentapi.EnvKey+"="+key,
		agentapi.EnvUserID+"="+strconv.Itoa(spec.UserID),
		agentapi.EnvWorkdir+"="+defaultWorkdir,
	)
	var own []string
	for _, m := range ms {
		if m.Type == mount.TypeTmpfs || m.Type == mount.TypeVolume && (m.VolumeOptions == nil || m.VolumeOptions.DriverConfig == nil) {
			own = append(own, m.Target) // named volumes and tmpfs; never host dirs
		}
	}
	if len(own) > 0 {
		env = append(env, agentapi.EnvOwnPaths+"="+strings.Join(own, ":"))
	}
	if socketDir != "" {
		env = append(env, agentapi.EnvSocket+"="+socketMount+"/"+socketName)
	}
	if !usesSocket(spec.Network) {
		env = append(env, agentapi.EnvPort+"="+strconv.Itoa(plan[0].Container))
	}

	stopTimeout := int(r.opts.StopTimeout / time.Second)
	cfg := &container.Config{
		Image:       ref,
		Entrypoint:  []string{image.AgentPath},
		Cmd:         []string{},
		Env:         env,
		Labels:      labels,
		WorkingDir:  defaultWorkdir,
		User:        "0",       // the agent sets up the sandbox user, then runs every command as that user
		StopSignal:  "SIGTERM", // API 1.41 ignores a signal given to stop: set it here
		StopTimeout: &stopTimeout,
	}
	host := hostConfig(spec)
	host.Mounts = ms
	if spec.ReadOnlyRootfs {
		// The places a sandbox writes to stay writable, unless a mount of
		// the caller's is already there.
		host.Tmpfs = map[string]string{}
		for dir, opts := range map[string]string{"/tmp": "mode=1777", "/home": "mode=755", defaultWorkdir: "mode=755", "/run": "mode=755"} {
			if !slices.ContainsFunc(ms, func(m mount.Mount) bool { return m.Target == dir }) {
				host.Tmpfs[dir] = "rw,nosuid,nodev," + opts
			}
		}
	}
	if socketDir != "" {
		host.Binds = append(host.Binds, socketDir+":"+socketMount)
	}
	var netcfg *network.NetworkingConfig
	switch spec.Network {
	case sandbox.NetworkHost:
		host.NetworkMode = "host"
	case sandbox.NetworkNone:
		host.NetworkMode = "none"
	case sandbox.NetworkInternal:
		if err := r.ensureInternalNetwork(ctx); err != nil {
			return "", fmt.Errorf("create sandbox %s: %w", id, err)
		}
		host.NetworkMode = container.NetworkMode(internalNetwork)
	default:
		cfg.ExposedPorts = network.PortSet{}
		host.PortBindings = network.PortMap{}
		addr, _ := netip.ParseAddr(spec.BindAddress)
		for _, p := range plan {
			cp, _ := network.PortFrom(uint16(p.Container), network.TCP)
			cfg.ExposedPorts[cp] = struct{}{}
			host.PortBindings[cp] = []network.PortBinding{{HostIP: addr, HostPort: strconv.Itoa(p.HostPort)}}
		}
	}
	// The create call is not cut by ctx: the engine may finish a create whose
	// request was cancelled, and a container berth never learnt the id of
	// would be left behind. A cancelled ctx is honoured right after.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	res, err := r.engine.ContainerCreate(cctx, client.ContainerCreateOptions{
		Name:             name,
		Config:           cfg,
		HostConfig:       host,
		NetworkingConfig: netcfg,
	})
	cancel()
	if err == nil && ctx.Err() != nil {
		r.discard(res.ID, r.log)
		return "", fmt.Errorf("create sandbox %s: %w", id, ctx.Err())
	}
	if err != nil {
		err = fmt.Errorf("create sandbox %s: create container from %s: %w", id, ref, translate(err))
		if cerrdefs.IsNotFound(err) {
			return "", imageGone{err}
		}
		return "", err
	}
	// Extra networks are joined before the start, so the sandbox never runs
	// without them; a missing network fails the create.
	for _, n := range spec.Networks {
		if _, err := r.engine.NetworkConnect(ctx, n, client.NetworkConnectOptions{Container: res.ID}); err != nil {
			r.discard(res.ID, r.log)
			return "", fmt.Errorf("create sandbox %s: join network %q: %w", id, n, translate(err))
		}
	}
	return res.ID, nil
}

// releaseAll gives back everything a sandbox held besides its container:
// port reservations and its directory (agent socket).
func (r *Runtime) releaseAll(id string, log interface{ Warn(string, ...any) }) {
	if err := r.opts.Ports.ReleaseOwner(id); err != nil {
		log.Warn("releasing ports", "sandbox", id, "err", err)
	}
	if r.opts.StateDir != "" {
		if err := os.RemoveAll(filepath.Join(r.opts.StateDir, "sandboxes", id)); err != nil {
			log.Warn("removing sandbox dir", "sandbox", id, "err", err)
		}
		if err := r.overlays().Remove(id); err != nil {
			log.Warn("removing overlay dirs", "sandbox", id, "err", err)
		}
	}
}

// overlays is where the upper and work dirs of overlay mounts live.
func (r *Runtime) overlays() mounts.Overlays {
	return mounts.Overlays{Root: filepath.Join(r.opts.StateDir, "overlay")}
}

// testRunLabel marks the objects of a test run (see internal/dockertest);
// volumes made through a sandbox's mounts carry it too.
const testRunLabel = "berth.test-run"

// parseMounts reads the spec's volumes and tmpfs mounts; every bad item is
// reported, quoted.
func parseMounts(spec sandbox.Spec) ([]mounts.Mount, error) {
	ms, err := mounts.ParseVolumeList(spec.Volumes)
	errs := []error{err}
	for _, t := range spec.Tmpfs {
		m, err := mounts.ParseTmpfs(t)
		errs = append(errs, err)
		if err == nil {
			m.Index = len(ms)
			ms = append(ms, m)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%w: %w", sandbox.ErrInvalidSpec, err)
	}
	return ms, nil
}

// localEngine reports whether the engine runs on this machine (a unix
// socket), so that a host dir bind-mounted into a sandbox is shared with it.
func (r *Runtime) localEngine() bool {
	return r.opts.DaemonHost == "" || strings.HasPrefix(r.opts.DaemonHost, "unix://")
}

// Where the agent's socket lives: a per-sandbox host dir, bind-mounted.
const (
	socketMount = "/run/berth"
	socketName  = "agent.sock"
)

// sandboxDir makes the sandbox's private host directory.
func (r *Runtime) sandboxDir(id string) (string, error) {
	if r.opts.StateDir == "" {
		return "", errors.New("a sandbox without a network needs a state dir for its agent socket")
	}
	dir, err := filepath.Abs(filepath.Join(r.opts.StateDir, "sandboxes", id))
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("sandbox dir: %w", err)
	}
	return dir, nil
}

// formatPorts and parsePorts keep the port plan in one label:
// "agent=31000:31000,app1=50001:50001,port-8080=50002:8080".
func formatPorts(plan []sandbox.Port) string {
	var parts []string
	for _, p := range plan {
		if p.HostPort != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d:%d", p.Name, p.HostPort, p.Container))
		}
	}
	return strings.Join(parts, ",")
}

func parsePorts(label, hostIP string) []sandbox.Port {
	var out []sandbox.Port
	for item := range strings.SplitSeq(label, ",") {
		name, nums, ok := strings.Cut(item, "=")
		hs, cs, ok2 := strings.Cut(nums, ":")
		h, err1 := strconv.Atoi(hs)
		c, err2 := strconv.Atoi(cs)
		if ok && ok2 && err1 == nil && err2 == nil {
			out = append(out, sandbox.Port{Name: name, HostIP: hostIP, HostPort: h, Container: c})
		}
	}
	return out
}

// explainStart makes the engine's start errors that have a known cause
// say what to do.
func explainStart(err error) error {
	if s := err.Error(); strings.Contains(s, "could not select device driver") {
		return fmt.Errorf("GPUs were asked for but the Docker engine has no GPU runtime (install the NVIDIA Container Toolkit and restart Docker, or drop enable_gpu): %w", err)
	}
	return err
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
