package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Metric names. Berth's and the docker side's, each with its ratio.
const (
	mColdReady   = "cold_create_to_ready"
	mColdFirst   = "cold_create_to_first_command"
	mWarmReady   = "warm_claim_to_ready"
	mWarmFirst   = "warm_claim_to_first_command"
	mRunExec     = "run_to_first_exec"
	mRun         = "run_d"
	mExec        = "exec_round_trip"
	mPause       = "pause"
	mResume      = "resume"
	mUnpause     = "unpause"
	mWrite       = "file_write_1mib"
	mRead        = "file_read_1mib"
	mCpIn        = "cp_in_1mib"
	mCpOut       = "cp_out_1mib"
	fileSize     = 1 << 20
	benchPath    = "/tmp/bench-1mib"
	poolWaitTime = 5 * time.Minute
)

func newDocker(opts Options) *dockerCLI {
	if opts.Docker == "" {
		return nil
	}
	labels := maps.Clone(opts.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels["berth.bench-side"] = "docker"
	return &dockerCLI{bin: opts.Docker, image: opts.Spec.Image.Base, labels: labels}
}

// Sequential measures one operation at a time on a quiet machine, N rounds,
// berth and docker interleaved round by round: cold create→ready and →first
// command next to `docker run -d` + `docker exec true`; warm claim→ready and
// →first command (the pool refilled between rounds, not timed); then on one
// sandbox and one container, exec round trip, pause, resume, and a 1 MiB
// file write and read next to docker exec, pause, unpause and docker cp.
func Sequential(ctx context.Context, t Target, opts Options) (Report, error) {
	opts = opts.withDefaults()
	rep := newReport("sequential", opts)
	d := newDocker(opts)
	if err := warmUp(ctx, t, d, opts); err != nil {
		return rep, err
	}
	var (
		coldReady, coldFirst, warmReady, warmFirst, runExec, run  []time.Duration
		coldFail, coldFirstFail, warmFail, warmFirstFail, rawFail int
		coldTraces, warmTraces                                    []*docker.Trace
		warmMisses                                                int
	)
	// Quiet: no refill of the pool runs while anything is measured.
	quiet := func() error {
		if t.Pool == nil {
			return nil
		}
		return waitPoolFull(ctx, t.Pool, poolWaitTime)
	}
	for i := range opts.N {
		if err := quiet(); err != nil {
			return rep, err
		}
		// berth, cold.
		tr := &docker.Trace{}
		ready, first, err := createFirst(ctx, t, opts.Spec, tr, func(ctx context.Context, s sandbox.Spec) (sandbox.Sandbox, bool, error) {
			sb, err := t.Runtime.Create(ctx, s)
			return sb, false, err
		})
		switch {
		case ready == 0:
			coldFail++
			coldFirstFail++
			opts.logf("berth cold create %d: %v", i, err)
		case err != nil:
			coldReady = append(coldReady, ready)
			coldFirstFail++
			opts.logf("berth first command %d: %v", i, err)
		default:
			coldReady, coldFirst = append(coldReady, ready), append(coldFirst, first)
			coldTraces = append(coldTraces, tr)
		}
		// docker.
		if err := quiet(); err != nil {
			return rep, err
		}
		if d != nil {
			r, total, err := d.runExec(ctx)
			if err != nil {
				rawFail++
				opts.logf("docker run+exec %d: %v", i, err)
			} else {
				run, runExec = append(run, r), append(runExec, total)
			}
		}
		// berth, warm: the pool is full again before the claim.
		if t.Pool != nil {
			if err := quiet(); err != nil {
				return rep, err
			}
			tr := &docker.Trace{}
			warm := false
			ready, first, err := createFirst(ctx, t, opts.Spec, tr, func(ctx context.Context, s sandbox.Spec) (sandbox.Sandbox, bool, error) {
				sb, w, err := t.Pool.Create(ctx, s)
				warm = w
				return sb, w, err
			})
			switch {
			case ready == 0 || !warm:
				warmFail++
				warmFirstFail++
				if ready != 0 {
					warmMisses++
					err = errors.New("the pool had no sandbox: the create went cold")
				}
				opts.logf("berth warm claim %d: %v", i, err)
			case err != nil:
				warmReady = append(warmReady, ready)
				warmFirstFail++
				opts.logf("berth warm first command %d: %v", i, err)
			default:
				warmReady, warmFirst = append(warmReady, ready), append(warmFirst, first)
				warmTraces = append(warmTraces, tr)
			}
		}
		opts.logf("create round %d/%d done", i+1, opts.N)
	}
	rep.add(mColdReady, SideBerth, coldReady, coldFail, "")
	rep.add(mColdFirst, SideBerth, coldFirst, coldFirstFail, "")
	if t.Pool != nil {
		rep.add(mWarmReady, SideBerth, warmReady, warmFail, "")
		rep.add(mWarmFirst, SideBerth, warmFirst, warmFirstFail, "")
		rep.count("warm_misses", SideBerth, float64(warmMisses))
	}
	if d != nil {
		rep.add(mRunExec, SideDocker, runExec, rawFail, cmdRunExec)
		rep.add(mRun, SideDocker, run, rawFail, "docker run -d IMAGE sleep 3600")
	}
	rep.phases("cold", coldTraces)
	rep.phases("warm", warmTraces)

	if err := quiet(); err != nil {
		return rep, err
	}
	if err := operations(ctx, t, d, opts, &rep); err != nil {
		return rep, err
	}
	for _, b := range []string{mColdReady, mColdFirst, mWarmReady, mWarmFirst} {
		rep.ratio(b, mRunExec)
	}
	rep.ratio(mExec, mExec)
	rep.ratio(mPause, mPause)
	rep.ratio(mResume, mUnpause)
	rep.ratio(mWrite, mCpIn)
	rep.ratio(mRead, mCpOut)
	return rep, nil
}

// warmUp makes one sandbox and runs one container, unmeasured: the first
// create may build the runtime image.
func warmUp(ctx context.Context, t Target, d *dockerCLI, opts Options) error {
	sb, err := t.Runtime.Create(ctx, opts.Spec)
	if err != nil {
		return fmt.Errorf("bench warm-up: %w", err)
	}
	if err := t.Runtime.Remove(ctx, sb.ID); err != nil {
		return err
	}
	if d != nil {
		if _, _, err := d.runExec(ctx); err != nil {
			return fmt.Errorf("bench warm-up (docker): %w", err)
		}
	}
	return nil
}

// createFirst times a create (through create) to ready, then to its first
// command done (`true` through the agent), and removes the sandbox (not
// timed). ready is 0 when the create failed; err is then the create's,
// else the first command's.
func createFirst(ctx context.Context, t Target, spec sandbox.Spec, tr *docker.Trace,
	create func(context.Context, sandbox.Spec) (sandbox.Sandbox, bool, error)) (ready, first time.Duration, err error) {
	t0 := time.Now()
	sb, _, err := create(docker.WithTrace(ctx, tr), spec)
	if err != nil {
		return 0, 0, err
	}
	ready = time.Since(t0)
	defer func() {
		if rerr := t.Runtime.Remove(context.WithoutCancel(ctx), sb.ID); rerr != nil && err == nil {
			err = rerr
		}
	}()
	if err := runTrue(ctx, t.Agents(sb)); err != nil {
		return ready, 0, err
	}
	return ready, time.Since(t0), nil
}

func runTrue(ctx context.Context, agent *agentapi.Client) error {
	_, _, exit, err := agent.ExecOutput(ctx, agentapi.ExecRequest{Argv: []string{"true"}})
	if err == nil && exit.ExitCode != 0 {
		err = fmt.Errorf("true exited %d", exit.ExitCode)
	}
	return err
}

// waitPoolFull waits until every pool has its size ready and nothing in
// flight.
func waitPoolFull(ctx context.Context, p Pool, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		full := true
		var last string
		for _, st := range p.Stats() {
			if st.Ready < st.Size || st.Filling > 0 {
				full = false
				last = st.LastError
			}
		}
		if full {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("bench: the warm pool did not fill within %s (last error: %s)", timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// operations measures, on one sandbox and one container, N times each and
// interleaved (round 0 warms both up): exec round trip, pause, resume, and
// a 1 MiB write and read.
func operations(ctx context.Context, t Target, d *dockerCLI, opts Options, rep *Report) error {
	sb, err := t.Runtime.Create(ctx, opts.Spec)
	if err != nil {
		return fmt.Errorf("bench operations: %w", err)
	}
	defer t.Runtime.Remove(context.WithoutCancel(ctx), sb.ID)
	agent := t.Agents(sb)
	cid := ""
	var hostFile, outDir string
	if d != nil {
		id, _, err := d.start(ctx)
		if err != nil {
			return fmt.Errorf("bench operations (docker): %w", err)
		}
		defer d.rm(id)
		cid = id
		dir, err := os.MkdirTemp("", "berth-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		hostFile, outDir = filepath.Join(dir, "bench-1mib"), filepath.Join(dir, "out")
		if err := os.Mkdir(outDir, 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(hostFile, randomBytes(fileSize), 0o644); err != nil {
			return err
		}
	}
	payload := randomBytes(fileSize)
	samples := map[string][]time.Duration{}
	fails := map[string]int{}
	record := func(i int, name string, d time.Duration, err error) {
		if i == 0 {
			return
		}
		if err != nil {
			fails[name]++
			opts.logf("%s round %d: %v", name, i, err)
			return
		}
		samples[name] = append(samples[name], d)
	}
	timed := func(f func() error) (time.Duration, error) {
		t0 := time.Now()
		err := f()
		return time.Since(t0), err
	}
	for i := range opts.N + 1 {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		dd, err := timed(func() error { return runTrue(ctx, agent) })
		record(i, "b"+mExec, dd, err)
		dd, err = timed(func() error { _, err := t.Runtime.Pause(ctx, sb.ID); return err })
		record(i, "b"+mPause, dd, err)
		dd, err = timed(func() error { _, err := t.Runtime.Resume(ctx, sb.ID); return err })
		record(i, "b"+mResume, dd, err)
		dd, err = timed(func() error {
			_, err := agent.WriteFile(ctx, benchPath, bytes.NewReader(payload), agentapi.WriteOptions{})
			return err
		})
		record(i, "b"+mWrite, dd, err)
		dd, err = timed(func() error {
			got, _, err := agent.ReadFileBytes(ctx, benchPath, agentapi.ReadOptions{})
			if err == nil && !bytes.Equal(got, payload) {
				err = errors.New("read back other bytes")
			}
			return err
		})
		record(i, "b"+mRead, dd, err)
		if d != nil {
			dd, err = d.timed(ctx, "exec", cid, "true")
			record(i, "d"+mExec, dd, err)
			dd, err = d.timed(ctx, "pause", cid)
			record(i, "d"+mPause, dd, err)
			dd, err = d.timed(ctx, "unpause", cid)
			record(i, "d"+mUnpause, dd, err)
			dd, err = d.timed(ctx, "cp", hostFile, cid+":"+benchPath)
			record(i, "d"+mCpIn, dd, err)
			dd, err = d.timed(ctx, "cp", cid+":"+benchPath, outDir)
			record(i, "d"+mCpOut, dd, err)
		}
	}
	for _, n := range []string{mExec, mPause, mResume, mWrite, mRead} {
		rep.add(n, SideBerth, samples["b"+n], fails["b"+n], "")
	}
	if d != nil {
		for _, x := range []struct{ name, cmd string }{{mExec, cmdExec}, {mPause, cmdPause}, {mUnpause, cmdUnpause}, {mCpIn, cmdCpIn}, {mCpOut, cmdCpOut}} {
			rep.add(x.name, SideDocker, samples["d"+x.name], fails["d"+x.name], x.cmd)
		}
	}
	return nil
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
