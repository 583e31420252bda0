package bench

import (
	"context"
	"fmt"
	"os/exec"
	"time"

	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Create measures, N times each and interleaved so that machine noise hits
// both sides alike: berth create→ready, berth create→first command, and the
// raw Docker equivalent `docker run -d IMAGE sleep` + `docker exec ID true`.
// Every sandbox and container is removed right after it is measured. It is
// the create half of Sequential, without a pool.
func Create(ctx context.Context, t Target, opts Options) (Report, error) {
	opts = opts.withDefaults()
	rep := newReport("create", opts)
	d := newDocker(opts)
	if err := warmUp(ctx, t, d, opts); err != nil {
		return rep, err
	}
	var ready, first, raw []time.Duration
	var readyFail, firstFail, rawFail int
	var traces []*docker.Trace
	for i := range opts.N {
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		tr := &docker.Trace{}
		r, f, err := createFirst(ctx, t, opts.Spec, tr, func(ctx context.Context, s sandbox.Spec) (sandbox.Sandbox, bool, error) {
			sb, err := t.Runtime.Create(ctx, s)
			return sb, false, err
		})
		switch {
		case r == 0:
			readyFail++
			firstFail++
			opts.logf("berth create %d: %v", i, err)
		case err != nil:
			ready = append(ready, r)
			firstFail++
			opts.logf("berth first command %d: %v", i, err)
		default:
			ready, first = append(ready, r), append(first, f)
			traces = append(traces, tr)
		}
		if d != nil {
			if _, total, err := d.runExec(ctx); err != nil {
				rawFail++
				opts.logf("docker run+exec %d: %v", i, err)
			} else {
				raw = append(raw, total)
			}
		}
		opts.logf("round %d/%d done", i+1, opts.N)
	}
	rep.add("create_to_ready", SideBerth, ready, readyFail, "")
	rep.add("create_to_first_command", SideBerth, first, firstFail, "")
	rep.phases("cold", traces)
	if d != nil {
		rep.add(mRunExec, SideDocker, raw, rawFail, cmdRunExec)
		rep.ratio("create_to_ready", mRunExec)
		rep.ratio("create_to_first_command", mRunExec)
	}
	return rep, nil
}

// Exec measures the exec round trip of `true` through the agent, N times,
// interleaved with `docker exec ID true` on the same sandbox's container.
func Exec(ctx context.Context, t Target, opts Options) (Report, error) {
	opts = opts.withDefaults()
	rep := newReport("exec", opts)
	sb, err := t.Runtime.Create(ctx, opts.Spec)
	if err != nil {
		return rep, fmt.Errorf("bench exec: %w", err)
	}
	defer t.Runtime.Remove(context.WithoutCancel(ctx), sb.ID)
	agent := t.Agents(sb)
	var viaAgent, viaDocker []time.Duration
	var agentFail, dockerFail int
	for i := range opts.N + 1 { // round 0 warms both paths up
		t0 := time.Now()
		err := runTrue(ctx, agent)
		d := time.Since(t0)
		if i > 0 {
			if err != nil {
				agentFail++
			} else {
				viaAgent = append(viaAgent, d)
			}
		}
		if opts.Docker != "" {
			t0 = time.Now()
			err := exec.CommandContext(ctx, opts.Docker, "exec", sb.ContainerID, "true").Run()
			d = time.Since(t0)
			if i > 0 {
				if err != nil {
					dockerFail++
				} else {
					viaDocker = append(viaDocker, d)
				}
			}
		}
	}
	rep.add(mExec, SideBerth, viaAgent, agentFail, "")
	if opts.Docker != "" {
		rep.add(mExec, SideDocker, viaDocker, dockerFail, cmdExec)
		rep.ratio(mExec, mExec)
	}
	return rep, nil
}
