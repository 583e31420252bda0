package docker

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/sandbox"
)

// Get returns the sandbox ref names.
func (r *Runtime) Get(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	cid, err := r.resolve(ctx, ref)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	sb, err := r.inspect(ctx, cid)
	if err != nil {
		return sandbox.Sandbox{}, fmt.Errorf("get sandbox %s: %w", ref, err)
	}
	return sb, nil
}

// List returns the sandboxes that match opts, newest first. The warm
// pool's sandboxes are not listed until claimed, unless opts.Owner is
// OwnerPool (then only they are). A claimed sandbox's owner and labels are
// its claim's, so the filters apply here rather than in the engine.
func (r *Runtime) List(ctx context.Context, opts sandbox.ListOptions) ([]sandbox.Sandbox, error) {
	res, err := r.engine.ContainerList(ctx, client.ContainerListOptions{All: opts.All, Filters: make(client.Filters).Add("label", sandbox.LabelID)})
	if err != nil {
		return nil, fmt.Errorf("list sandboxes: %w", translate(err))
	}
	out := make([]sandbox.Sandbox, 0, len(res.Items))
	for _, c := range res.Items {
		if r.foreignPool(c.Labels) {
			continue
		}
		sb := r.fromSummary(c)
		if isUnclaimed(sb, c.Labels) != (opts.Owner == OwnerPool) {
			continue
		}
		if opts.Owner != "" && sb.Owner != opts.Owner {
			continue
		}
		labels := c.Labels // a cold sandbox matches on its container's labels, as the engine's filter did
		if c.Labels[LabelPool] != "" && !isUnclaimed(sb, c.Labels) {
			labels = sb.Labels
		}
		if !hasLabels(labels, opts.Label) {
			continue
		}
		out = append(out, sb)
	}
	slices.SortFunc(out, func(a, b sandbox.Sandbox) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// hasLabels reports whether labels has every key of want with its value.
func hasLabels(labels, want map[string]string) bool {
	for k, v := range want {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// Pause freezes every process of the sandbox; memory stays allocated.
func (r *Runtime) Pause(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	cid, err := r.resolve(ctx, ref)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	if _, err := r.engine.ContainerPause(ctx, cid, client.ContainerPauseOptions{}); err != nil {
		return sandbox.Sandbox{}, fmt.Errorf("pause sandbox %s: %w", ref, translate(err))
	}
	return r.inspect(ctx, cid)
}

// Stop stops the sandbox's container (SIGTERM, then SIGKILL after the stop
// timeout); its memory is freed, its files kept. Resume starts it again.
func (r *Runtime) Stop(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	cid, err := r.resolve(ctx, ref)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	sb, err := r.inspect(ctx, cid)
	if err != nil {
		return sandbox.Sandbox{}, fmt.Errorf("stop sandbox %s: %w", ref, err)
	}
	if sb.State == string(container.StatePaused) {
		// A frozen container cannot take the stop signal: thaw it first.
		if _, err := r.engine.ContainerUnpause(ctx, cid, client.ContainerUnpauseOptions{}); err != nil {
			return sandbox.Sandbox{}, fmt.Errorf("stop sandbox %s: unpause: %w", ref, translate(err))
		}
	}
	timeout := int(r.opts.StopTimeout / time.Second)
	if _, err := r.engine.ContainerStop(ctx, cid, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		return sandbox.Sandbox{}, fmt.Errorf("stop sandbox %s: %w", ref, translate(err))
	}
	return r.inspect(ctx, cid)
}

// Resume thaws a paused sandbox or starts a stopped one, and returns once its
// agent answers again.
func (r *Runtime) Resume(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	cid, err := r.resolve(ctx, ref)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	sb, err := r.inspect(ctx, cid)
	if err != nil {
		return sandbox.Sandbox{}, fmt.Errorf("resume sandbox %s: %w", ref, err)
	}
	started := false
	switch container.ContainerState(sb.State) {
	case container.StatePaused:
		_, err = r.engine.ContainerUnpause(ctx, cid, client.ContainerUnpauseOptions{})
	case container.StateExited, container.StateCreated:
		_, err = r.engine.ContainerStart(ctx, cid, client.ContainerStartOptions{})
		started = true
	case container.StateRunning:
	default:
		return sandbox.Sandbox{}, fmt.Errorf("%w: resume sandbox %s: container is %s", sandbox.ErrConflict, ref, sb.State)
	}
	if err != nil {
		return sandbox.Sandbox{}, fmt.Errorf("resume sandbox %s: %w", ref, translate(err))
	}
	timeout := defaultTimeout
	if err := r.waitReady(ctx, sb.ID, cid, sb.AgentURL, sb.Key, timeout, false); err != nil {
		return sandbox.Sandbox{}, fmt.Errorf("resume sandbox %s: %w", ref, err)
	}
	if started {
		// A new agent: a claimed sandbox's env lives in its claim.
		if err := r.reapplyClaim(ctx, sb); err != nil {
			return sandbox.Sandbox{}, fmt.Errorf("resume sandbox %s: %w", ref, err)
		}
	}
	return r.inspect(ctx, cid)
}

// Remove force-removes the sandbox's container and anonymous volumes and
// releases its ports. A sandbox that is already gone is not an error.
func (r *Runtime) Remove(ctx context.Context, ref string) error {
	cid, err := r.resolveRef(ctx, ref, true)
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	id := ""
	if sb, err := r.inspect(ctx, cid); err == nil {
		id = sb.ID
		r.agents.forget(sb.AgentURL)
	}
	_, err = r.engine.ContainerRemove(ctx, cid, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove sandbox %s: %w", ref, translate(err))
	}
	if id != "" {
		r.releaseAll(id, r.log)
	}
	return nil
}

// Logs streams the container's stdout and stderr, demultiplexed.
func (r *Runtime) Logs(ctx context.Context, ref string, opts sandbox.LogOptions) (io.ReadCloser, error) {
	cid, err := r.resolve(ctx, ref)
	if err != nil {
		return nil, err
	}
	tail := opts.Tail
	if tail == "" {
		tail = "all"
	}
	rc, err := r.engine.ContainerLogs(ctx, cid, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: tail})
	if err != nil {
		return nil, fmt.Errorf("logs of sandbox %s: %w", ref, translate(err))
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, rc)
		rc.Close()
		pw.CloseWithError(err)
	}()
	return readCloser{pr, rc}, nil
}

type readCloser struct {
	io.Reader
	src io.Closer
}

func (rc readCloser) Close() error { return rc.src.Close() }

// resolve turns a reference (id, unique id prefix, or name) into a
// container id. The error wraps sandbox.ErrNotFound or ErrAmbiguous. The
// warm pool's unclaimed sandboxes are nobody's: they are found only with
// includePool (Remove).
func (r *Runtime) resolve(ctx context.Context, ref string) (string, error) {
	return r.resolveRef(ctx, ref, false)
}

func (r *Runtime) resolveRef(ctx context.Context, ref string, includePool bool) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("%w: empty sandbox reference", sandbox.ErrNotFound)
	}
	res, err := r.engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", sandbox.LabelID)})
	if err != nil {
		return "", fmt.Errorf("find sandbox %s: %w", ref, translate(err))
	}
	var byPrefix []container.Summary
	for _, c := range res.Items {
		id, name := c.Labels[sandbox.LabelID], c.Labels[sandbox.LabelName]
		if r.foreignPool(c.Labels) {
			continue
		}
		if c.Labels[LabelPool] != "" {
			rec, claimed := r.readClaim(id)
			if (!claimed || rec.Owner == OwnerPool) && !includePool {
				continue // the pool's (or being removed by it)
			}
			name = rec.Name
		}
		if id == ref || name != "" && name == ref {
			return c.ID, nil
		}
		if strings.HasPrefix(id, ref) {
			byPrefix = append(byPrefix, c)
		}
	}
	switch len(byPrefix) {
	case 0:
		return "", notFound(ref)
	case 1:
		return byPrefix[0].ID, nil
	default:
		ids := make([]string, len(byPrefix))
		for i, c := range byPrefix {
			ids[i] = c.Labels[sandbox.LabelID]
		}
		return "", fmt.Errorf("%w: %q matches sandboxes %s", sandbox.ErrAmbiguous, ref, strings.Join(ids, ", "))
	}
}

// notFoundErr is sandbox.ErrNotFound that errdefs also recognises.
type notFoundErr struct{ ref string }

func (e notFoundErr) Error() string { return fmt.Sprintf("%v: %q", sandbox.ErrNotFound, e.ref) }
func (e notFoundErr) Is(target error) bool {
	return target == sandbox.ErrNotFound || target == cerrdefs.ErrNotFound
}

func notFound(ref string) error { return notFoundErr{ref} }

func (r *Runtime) inspect(ctx context.Context, containerID string) (sandbox.Sandbox, error) {
	res, err := r.engine.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
	if err != nil {
		if cerrdefs.IsNotFound(err) {
			return sandbox.Sandbox{}, notFound(containerID)
		}
		return sandbox.Sandbox{}, fmt.Errorf("inspect container %s: %w", containerID, translate(err))
	}
	return r.FromInspect(res.Container), nil
}

func (r *Runtime) fromSummary(c container.Summary) sandbox.Sandbox {
	sb := r.base(c.ID, c.Labels)
	sb.State = string(c.State)
	sb.Status = sandbox.StatusFromState(sb.State)
	sb.CreatedAt = time.Unix(c.Created, 0).UTC()
	if sb.State == string(container.StateExited) {
		// "Exited (137) 3 minutes ago": the list call has no other exit code.
		if s, ok := strings.CutPrefix(c.Status, "Exited ("); ok {
			if i := strings.IndexByte(s, ')'); i > 0 {
				sb.ExitCode, _ = strconv.Atoi(s[:i])
			}
		}
	}
	bind := defaultBindAddress
	for _, p := range c.Ports {
		if p.IP.IsValid() {
			bind = p.IP.String()
		}
	}
	socketDir := ""
	for _, m := range c.Mounts {
		if m.Destination == socketMount {
			socketDir = m.Source
		}
	}
	r.addPorts(&sb, c.Labels, bind, socketDir)
	r.applyClaim(&sb, c.Labels)
	return sb
}

// base fills what the labels say.
func (r *Runtime) base(containerID string, labels map[string]string) sandbox.Sandbox {
	user := map[string]string{}
	if keys := labels[sandbox.LabelLabelKeys]; keys != "" {
		for _, k := range strings.Split(keys, ",") {
			if v, ok := labels[k]; ok {
				user[k] = v
			}
		}
	}
	return sandbox.Sandbox{
		ID:             labels[sandbox.LabelID],
		Name:           labels[sandbox.LabelName],
		Owner:          labels[sandbox.LabelOwner],
		SecurityPolicy: labels[sandbox.LabelSecurityPolicy],
		Image:          labels[sandbox.LabelImage],
		RuntimeImage:   labels[sandbox.LabelRuntimeImage],
		Labels:         user,
		ContainerID:    containerID,
		URLs:           map[string]string{},
		Ports:          []sandbox.Port{},
	}
}

// addPorts fills the published ports, their URLs and the agent's URL
// from the labels (and the socket dir, for sandboxes without a network).
func (r *Runtime) addPorts(sb *sandbox.Sandbox, labels map[string]string, bind, socketDir string) {
	sb.Network = labels[sandbox.LabelNetwork]
	if labels[sandbox.LabelNetwork] == sandbox.NetworkHost {
		bind = "127.0.0.1"
	}
	for _, p := range parsePorts(labels[sandbox.LabelPorts], bind) {
		sb.Ports = append(sb.Ports, p)
		sb.URLs[p.Name] = r.agentURL(bind, p.HostPort)
	}
	sb.AgentURL = sb.URLs["agent"]
	if socketDir != "" {
		// The socket is reachable from this machine only: prefer it when it
		// is there (it skips Docker's port proxy), and show it when there is
		// no TCP port at all.
		sock := filepath.Join(socketDir, socketName)
		if _, err := os.Stat(sock); err == nil || sb.AgentURL == "" {
			sb.AgentURL = "unix://" + sock
		}
		if sb.URLs["agent"] == "" {
			sb.URLs["agent"] = sb.AgentURL
		}
	}
}

// Exists reports whether a container of sandbox id exists, in any state.
func (r *Runtime) Exists(ctx context.Context, id string) (bool, error) {
	res, err := r.engine.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", sandbox.LabelID+"="+id),
	})
	if err != nil {
		return false, fmt.Errorf("check sandbox %s: %w", id, translate(err))
	}
	return len(res.Items) > 0, nil
}
