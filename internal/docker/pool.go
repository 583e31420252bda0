package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// The warm pool's marks. A pooled sandbox is a sandbox like any other,
// made ahead of time for a shape of spec, owned by OwnerPool, labelled
// LabelPool=<shape key> and named berth-pool-<id>. A claim hands it to a
// caller: a claim record next to the sandbox gives it the caller's name,
// owner, labels and security policy (Docker labels cannot change after
// create), the agent gets the caller's env, and the container is renamed
// berth-<id>.
const (
	LabelPool = "berth.pool" // the shape key of a pooled sandbox
	// LabelPoolState ties a pooled sandbox to the state dir its claim will
	// be recorded in (a hash of its path): only runtimes on that state dir
	// (the berth processes of one machine) see it as pooled.
	LabelPoolState = "berth.pool-state"
	OwnerPool      = sandbox.OwnerPool // the owner of a pooled sandbox until its claim
	poolNamePrefix = "berth-pool-"
	claimFileName  = "claim.json"
	// claimAgentTimeout bounds the agent's answer during a claim: a pooled
	// sandbox that is slower than that is not worth a warm start.
	claimAgentTimeout = 5 * time.Second
)

// ErrClaimed is returned by Claim when another claim took the sandbox
// first. The caller tries another one, or creates cold.
var ErrClaimed = errors.New("pooled sandbox already claimed")

// claimRecord is what a claim gives a pooled sandbox: the caller's parts
// of the spec. It lives in <state>/sandboxes/<id>/claim.json, made
// atomically (link of a complete file), and goes with the sandbox.
type claimRecord struct {
	Name   string            `json:"name,omitempty"`
	Owner  string            `json:"owner"`
	Labels map[string]string `json:"labels,omitempty"`
	// SecurityPolicy is the sandbox's own security policy, as the label
	// sandbox.LabelSecurityPolicy of a cold sandbox.
	SecurityPolicy string `json:"security_policy,omitempty"`
	// Env is given to the agent again when the container starts again
	// (resume after a stop): a cold sandbox keeps its env in the
	// container's config. The file is the state dir's, mode 0600.
	Env       map[string]string `json:"env,omitempty"`
	ClaimedAt time.Time         `json:"claimed_at"`
}

// Pooled is one pooled sandbox not yet claimed.
type Pooled struct {
	Sandbox sandbox.Sandbox
	Shape   string            // its shape key
	Labels  map[string]string // its container's Docker labels
}

// CreatePooled makes a sandbox for the warm pool: spec's shape, no name,
// env, labels or security policy of a caller, owner OwnerPool, Docker
// labels LabelPool=shape plus labels (which no record shows: tests mark
// their objects with them).
// It needs a state dir, where claims are recorded.
func (r *Runtime) CreatePooled(ctx context.Context, spec sandbox.Spec, shape string, labels map[string]string) (sandbox.Sandbox, error) {
	if r.opts.StateDir == "" {
		return sandbox.Sandbox{}, errors.New("pooled sandbox: the runtime has no state dir to record claims in")
	}
	if shape == "" {
		return sandbox.Sandbox{}, errors.New("pooled sandbox: empty shape key")
	}
	spec.Name, spec.Env, spec.Labels, spec.Owner, spec.Debug, spec.SecurityPolicy = "", nil, nil, "", false, ""
	if err := r.normalize(&spec); err != nil {
		return sandbox.Sandbox{}, err
	}
	spec.Owner = OwnerPool
	return r.create(ctx, spec, &poolParams{shape: shape, labels: labels})
}

// ListPooled returns the pooled sandboxes not yet claimed (of shape, or of
// every shape when shape is ""), in every state, oldest first. Their
// records come from a list: Key is empty (see Inspect).
func (r *Runtime) ListPooled(ctx context.Context, shape string) ([]Pooled, error) {
	f := make(client.Filters).Add("label", sandbox.LabelID).Add("label", LabelPoolState+"="+r.stateTag())
	if shape == "" {
		f.Add("label", LabelPool)
	} else {
		f.Add("label", LabelPool+"="+shape)
	}
	res, err := r.engine.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, fmt.Errorf("list pooled sandboxes: %w", translate(err))
	}
	var out []Pooled
	for _, c := range res.Items {
		sb := r.fromSummary(c)
		if sb.Owner != OwnerPool {
			continue // claimed
		}
		out = append(out, Pooled{Sandbox: sb, Shape: c.Labels[LabelPool], Labels: c.Labels})
	}
	// Oldest first: a claim takes the sandbox that waited longest.
	slices.SortStableFunc(out, func(a, b Pooled) int { return a.Sandbox.CreatedAt.Compare(b.Sandbox.CreatedAt) })
	return out, nil
}

// Inspect returns the full record of the container containerID (its key
// included), pooled or not.
func (r *Runtime) Inspect(ctx context.Context, containerID string) (sandbox.Sandbox, error) {
	return r.inspect(ctx, containerID)
}

// Claim hands the pooled sandbox sb (a record with its key, from
// CreatePooled or Inspect) to the caller of spec: spec's name, owner,
// labels and security policy through a claim record, its env through the
// agent, and the container renamed to berth-<id>. It returns the sandbox's record, the
// same as a cold create's. Of two claims of one sandbox, in any processes
// of this machine, exactly one wins; the other gets ErrClaimed. A name
// already in use gives sandbox.ErrConflict and leaves sb in the pool. On
// any other failure the sandbox is removed (it may be half claimed): the
// caller creates cold.
func (r *Runtime) Claim(ctx context.Context, sb sandbox.Sandbox, spec sandbox.Spec) (sandbox.Sandbox, error) {
	watch := startWatch(ctx)
	if err := r.normalize(&spec); err != nil {
		return sandbox.Sandbox{}, err
	}
	if spec.Owner == OwnerPool {
		return sandbox.Sandbox{}, fmt.Errorf("%w: owner %q is reserved for berth's warm pool", sandbox.ErrInvalidSpec, OwnerPool)
	}
	if r.opts.StateDir == "" || !validID(sb.ID) || sb.Key == "" || sb.ContainerID == "" {
		return sandbox.Sandbox{}, fmt.Errorf("claim sandbox %s: not a pooled sandbox record (no state dir, id, key or container)", sb.ID)
	}
	env := claimEnv(spec.Env, sb.Ports)
	rec := claimRecord{Name: spec.Name, Owner: spec.Owner, Labels: maps.Clone(spec.Labels), SecurityPolicy: spec.SecurityPolicy,
		Env: env, ClaimedAt: time.Now().UTC()}
	if err := r.writeClaim(ctx, sb.ID, rec); err != nil {
		return sandbox.Sandbox{}, err
	}
	watch.lap(PhaseClaim)
	log := r.log.With("sandbox", sb.ID)
	fail := func(step string, err error) (sandbox.Sandbox, error) {
		log.Warn("claim failed; removing the pooled sandbox", "step", step, "err", err)
		r.discard(sb.ContainerID, log)
		r.releaseAll(sb.ID, log)
		r.agents.forget(sb.AgentURL)
		return sandbox.Sandbox{}, fmt.Errorf("claim sandbox %s: %s: %w", sb.ID, step, err)
	}

	// The agent takes the env while the container takes its sandbox name:
	// the rename is the Docker event that tells watchers (berth serve's
	// monitor) to read the record again, now with the claim.
	renamed := make(chan error, 1)
	go func() {
		_, err := r.engine.ContainerRename(ctx, sb.ContainerID, client.ContainerRenameOptions{NewName: namePrefix + sb.ID})
		renamed <- translate(err)
	}()
	actx, cancel := context.WithTimeout(ctx, claimAgentTimeout)
	_, err := r.agents.get(sb.AgentURL, sb.Key).SetMeta(actx, agentapi.MetaRequest{Env: env})
	cancel()
	watch.lap(PhaseAgentEnv)
	rerr := <-renamed
	watch.lap(PhaseRename)
	if err != nil {
		return fail("set the agent's env", err)
	}
	if rerr != nil {
		return fail("rename container", rerr)
	}
	// The agent answered: the container runs, and its record is the pooled
	// one with the claim, exactly what an inspect would now give.
	out := sb
	out.State, out.Status = "running", sandbox.StatusRunning
	out.Ports, out.URLs = slices.Clone(sb.Ports), maps.Clone(sb.URLs)
	applyClaimRecord(&out, rec)
	log.Info("pooled sandbox claimed", "owner", rec.Owner, "name", rec.Name)
	return out, nil
}

// reapplyClaim gives a claimed sandbox's agent, started again, the env of
// its claim. A sandbox without a claim (a cold one) needs nothing.
func (r *Runtime) reapplyClaim(ctx context.Context, sb sandbox.Sandbox) error {
	rec, ok := r.readClaim(sb.ID)
	if !ok || len(rec.Env) == 0 {
		return nil
	}
	actx, cancel := context.WithTimeout(ctx, claimAgentTimeout)
	defer cancel()
	if _, err := r.agents.get(sb.AgentURL, sb.Key).SetMeta(actx, agentapi.MetaRequest{Env: rec.Env}); err != nil {
		return fmt.Errorf("give the agent its env again: %w", err)
	}
	return nil
}

// claimEnv is the env a claim gives the agent: the caller's, less the port
// variables berth sets itself (a cold create's container env lets berth's
// win too).
func claimEnv(env map[string]string, ports []sandbox.Port) map[string]string {
	out := maps.Clone(env)
	for _, p := range ports {
		switch p.Name {
		case "vscode":
			delete(out, "VSCODE_PORT")
		case "app1":
			delete(out, "APP_PORT_1")
		case "app2":
			delete(out, "APP_PORT_2")
		}
	}
	return out
}

// writeClaim records the claim of sandbox id, atomically: the record is
// written whole to a file of its own, then linked to claim.json, which
// fails if a claim is there already. With a name, the name is checked and
// the record made under the machine-wide name lock, as a create does.
func (r *Runtime) writeClaim(ctx context.Context, id string, rec claimRecord) error {
	if rec.Name != "" {
		unlock, err := r.lockNames(ctx)
		if err != nil {
			return fmt.Errorf("claim sandbox %s: %w", id, err)
		}
		defer unlock()
		if err := r.checkName(ctx, rec.Name); err != nil {
			return fmt.Errorf("claim sandbox %s: %w", id, err)
		}
	}
	dir := filepath.Join(r.opts.StateDir, "sandboxes", id)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("claim sandbox %s: %w", id, err)
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("claim sandbox %s: %w", id, err)
	}
	tmp, err := os.CreateTemp(dir, ".claim-*")
	if err != nil {
		return fmt.Errorf("claim sandbox %s: %w", id, err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("claim sandbox %s: write claim record: %w", id, err)
	}
	if err := os.Link(tmp.Name(), filepath.Join(dir, claimFileName)); err != nil {
		if errors.Is(err, os.ErrExist) {
			return fmt.Errorf("claim sandbox %s: %w", id, ErrClaimed)
		}
		return fmt.Errorf("claim sandbox %s: record claim: %w", id, err)
	}
	return nil
}

// readClaim returns the claim record of sandbox id, if it was claimed.
func (r *Runtime) readClaim(id string) (claimRecord, bool) {
	if r.opts.StateDir == "" || !validID(id) {
		return claimRecord{}, false
	}
	data, err := os.ReadFile(filepath.Join(r.opts.StateDir, "sandboxes", id, claimFileName))
	if err != nil {
		return claimRecord{}, false
	}
	var rec claimRecord
	if err := json.Unmarshal(data, &rec); err != nil || rec.Owner == "" {
		r.log.Warn("unreadable claim record", "sandbox", id, "err", err)
		return claimRecord{}, false
	}
	return rec, true
}

// applyClaim gives the record of a pooled sandbox its claim, if it has
// one: then it is the caller's sandbox, with the caller's name, owner,
// labels and security policy, created when it was claimed, exactly as a
// cold one.
func (r *Runtime) applyClaim(sb *sandbox.Sandbox, labels map[string]string) {
	if labels[LabelPool] == "" {
		return
	}
	if rec, ok := r.readClaim(sb.ID); ok {
		applyClaimRecord(sb, rec)
	}
}

func applyClaimRecord(sb *sandbox.Sandbox, rec claimRecord) {
	sb.Name, sb.Owner, sb.CreatedAt, sb.SecurityPolicy = rec.Name, rec.Owner, rec.ClaimedAt, rec.SecurityPolicy
	sb.Labels = maps.Clone(rec.Labels)
	if sb.Labels == nil {
		sb.Labels = map[string]string{}
	}
}

// foreignPool reports whether a container is a pooled sandbox of another
// state dir (another machine's berth, or a test's): its claims are recorded
// elsewhere, so this runtime can neither tell its owner nor claim it.
func (r *Runtime) foreignPool(labels map[string]string) bool {
	return labels[LabelPool] != "" && labels[LabelPoolState] != r.stateTag()
}

// isUnclaimed reports whether a record is a pooled sandbox nobody has
// claimed: such a sandbox is the pool's, not a caller's.
func isUnclaimed(sb sandbox.Sandbox, labels map[string]string) bool {
	return labels[LabelPool] != "" && sb.Owner == OwnerPool
}

// checkName fails with sandbox.ErrConflict if a sandbox (cold or claimed)
// has name. The caller holds the name lock.
func (r *Runtime) checkName(ctx context.Context, name string) error {
	res, err := r.engine.ContainerList(ctx, client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", sandbox.LabelID),
	})
	if err != nil {
		return fmt.Errorf("check name %q: %w", name, translate(err))
	}
	for _, c := range res.Items {
		n := c.Labels[sandbox.LabelName]
		if c.Labels[LabelPool] != "" {
			if rec, ok := r.readClaim(c.Labels[sandbox.LabelID]); ok {
				n = rec.Name
			}
		}
		if n == name {
			return fmt.Errorf("%w: name %q is already used by sandbox %s", sandbox.ErrConflict, name, c.Labels[sandbox.LabelID])
		}
	}
	return nil
}

// stateTag identifies the runtime's state dir in LabelPoolState.
func (r *Runtime) stateTag() string {
	r.tagOnce.Do(func() {
		dir, err := filepath.Abs(r.opts.StateDir)
		if err != nil {
			dir = r.opts.StateDir
		}
		h := sha256.Sum256([]byte(dir))
		r.tag = hex.EncodeToString(h[:])[:12]
	})
	return r.tag
}

// validID reports whether id is a sandbox id (16 hex digits), so that it
// is safe in a path.
func validID(id string) bool {
	if len(id) != 16 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// RemovePooled removes a pooled sandbox that nobody has claimed (a pool
// drains and replaces its sandboxes with it). It claims the sandbox for the
// pool first, so a caller's claim and the removal cannot both win: if a
// caller claimed it, it is left alone and the error wraps ErrClaimed.
func (r *Runtime) RemovePooled(ctx context.Context, sb sandbox.Sandbox) error {
	if !validID(sb.ID) || sb.ContainerID == "" {
		return fmt.Errorf("remove pooled sandbox %s: not a pooled sandbox record", sb.ID)
	}
	if r.opts.StateDir != "" {
		err := r.writeClaim(ctx, sb.ID, claimRecord{Owner: OwnerPool, ClaimedAt: time.Now().UTC()})
		if errors.Is(err, ErrClaimed) {
			if rec, ok := r.readClaim(sb.ID); !ok || rec.Owner != OwnerPool {
				return fmt.Errorf("remove pooled sandbox: %w", err)
			}
			// Already being removed by the pool: finish the job.
		} else if err != nil {
			return fmt.Errorf("remove pooled sandbox: %w", err)
		}
	}
	_, err := r.engine.ContainerRemove(ctx, sb.ContainerID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("remove pooled sandbox %s: %w", sb.ID, translate(err))
	}
	r.releaseAll(sb.ID, r.log)
	r.agents.forget(sb.AgentURL)
	return nil
}
