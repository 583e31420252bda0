package bench

import (
	"context"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/docker"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Staggered sends N creates arriving every Interval, each going on while
// the next arrive, through the warm pool when there is one (so claims meet
// the refills they cause, and creates go cold when the pool runs dry), and
// the same arrivals of `docker run -d` + `docker exec true`.
func Staggered(ctx context.Context, t Target, opts Options) (Report, error) {
	opts = opts.withDefaults()
	rep := newReport("staggered", opts)
	d := newDocker(opts)
	if err := warmUp(ctx, t, d, opts); err != nil {
		return rep, err
	}
	if t.Pool != nil {
		if err := waitPoolFull(ctx, t.Pool, poolWaitTime); err != nil {
			return rep, err
		}
	}
	type result struct {
		ready, first time.Duration
		warm         bool
		err          error
	}
	results := make([]result, opts.N)
	arrive := func(i int) {
		r := &results[i]
		r.ready, r.first, r.err = createFirst(ctx, t, opts.Spec, &docker.Trace{}, func(ctx context.Context, s sandbox.Spec) (sandbox.Sandbox, bool, error) {
			if t.Pool == nil {
				sb, err := t.Runtime.Create(ctx, s)
				return sb, false, err
			}
			sb, warm, err := t.Pool.Create(ctx, s)
			r.warm = warm
			return sb, warm, err
		})
	}
	if err := stagger(ctx, opts.N, opts.Interval, arrive); err != nil {
		return rep, err
	}
	var ready, first, warmReady, coldReady []time.Duration
	var readyFail, firstFail, warm int
	for i, r := range results {
		switch {
		case r.ready == 0:
			readyFail++
			firstFail++
			opts.logf("staggered create %d: %v", i, r.err)
			continue
		case r.err != nil:
			firstFail++
			opts.logf("staggered first command %d: %v", i, r.err)
		default:
			first = append(first, r.first)
		}
		ready = append(ready, r.ready)
		if r.warm {
			warm++
			warmReady = append(warmReady, r.ready)
		} else {
			coldReady = append(coldReady, r.ready)
		}
	}
	rep.add("create_to_ready", SideBerth, ready, readyFail, "")
	rep.add("create_to_first_command", SideBerth, first, firstFail, "")
	if t.Pool != nil {
		rep.add(mWarmReady, SideBerth, warmReady, 0, "")
		rep.add(mColdReady, SideBerth, coldReady, 0, "")
		rep.count("warm", SideBerth, float64(warm))
		rep.count("cold", SideBerth, float64(len(ready)-warm))
	}
	if d != nil {
		raw := make([]time.Duration, opts.N)
		errs := make([]error, opts.N)
		if err := stagger(ctx, opts.N, opts.Interval, func(i int) { _, raw[i], errs[i] = d.runExec(ctx) }); err != nil {
			return rep, err
		}
		var ok []time.Duration
		fail := 0
		for i, e := range errs {
			if e != nil {
				fail++
				opts.logf("staggered docker run+exec %d: %v", i, e)
				continue
			}
			ok = append(ok, raw[i])
		}
		rep.add(mRunExec, SideDocker, ok, fail, cmdRunExec)
		rep.ratio("create_to_ready", mRunExec)
		rep.ratio("create_to_first_command", mRunExec)
	}
	rep.count("interval_ms", "", float64(opts.Interval.Milliseconds()))
	return rep, nil
}

// stagger calls f(0..n-1), one call starting every interval, each in its
// own goroutine, and waits for all of them.
func stagger(ctx context.Context, n int, interval time.Duration, f func(i int)) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for i := range n {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
		wg.Go(func() { f(i) })
	}
	return nil
}

// Burst starts Burst cold creates at once (each then runs `true`), keeps
// them all until the last is done, removes them, and checks that nothing is
// left behind; then the same with `docker run -d` + `docker exec true`.
func Burst(ctx context.Context, t Target, opts Options) (Report, error) {
	opts = opts.withDefaults()
	rep := newReport("burst", opts)
	d := newDocker(opts)
	if err := warmUp(ctx, t, d, opts); err != nil {
		return rep, err
	}
	b := opts.Burst
	ready := make([]time.Duration, b)
	first := make([]time.Duration, b)
	errs := make([]error, b)
	ids := make([]string, b)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range b {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			sb, err := t.Runtime.Create(ctx, opts.Spec)
			if err != nil {
				errs[i] = err
				return
			}
			ready[i], ids[i] = time.Since(t0), sb.ID
			if err := runTrue(ctx, t.Agents(sb)); err != nil {
				errs[i] = err
				return
			}
			first[i] = time.Since(t0)
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(t0)
	var okReady, okFirst []time.Duration
	readyFail, firstFail := 0, 0
	for i := range b {
		if ready[i] > 0 {
			okReady = append(okReady, ready[i])
		} else {
			readyFail++
		}
		if first[i] > 0 {
			okFirst = append(okFirst, first[i])
		} else {
			firstFail++
			opts.logf("burst create %d: %v", i, errs[i])
		}
	}
	removeAll(ctx, t.Runtime, ids, opts)
	rep.add("burst_create_to_ready", SideBerth, okReady, readyFail, "")
	rep.add("burst_create_to_first_command", SideBerth, okFirst, firstFail, "")
	rep.count("burst_size", "", float64(b))
	rep.count("wall_ms", SideBerth, float64(wall.Milliseconds()))
	left, err := t.Runtime.List(ctx, sandbox.ListOptions{All: true, Label: opts.Labels})
	if err != nil {
		return rep, err
	}
	rep.count("leftovers", SideBerth, float64(len(left)))

	if d != nil {
		raw := make([]time.Duration, b)
		derrs := make([]error, b)
		start := make(chan struct{})
		for i := range b {
			wg.Go(func() {
				<-start
				_, raw[i], derrs[i] = d.runExec(ctx)
			})
		}
		t0 := time.Now()
		close(start)
		wg.Wait()
		wall := time.Since(t0)
		var ok []time.Duration
		fail := 0
		for i, e := range derrs {
			if e != nil {
				fail++
				opts.logf("burst docker run+exec %d: %v", i, e)
				continue
			}
			ok = append(ok, raw[i])
		}
		rep.add("burst_run_to_first_exec", SideDocker, ok, fail, cmdRunExec)
		rep.count("wall_ms", SideDocker, float64(wall.Milliseconds()))
		n, err := d.leftovers(ctx)
		if err != nil {
			return rep, err
		}
		rep.count("leftovers", SideDocker, float64(n))
		rep.ratio("burst_create_to_first_command", "burst_run_to_first_exec")
	}
	return rep, nil
}

// removeAll removes sandboxes, a few at a time.
func removeAll(ctx context.Context, rt Runtime, ids []string, opts Options) {
	ctx = context.WithoutCancel(ctx)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, id := range ids {
		if id == "" {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := rt.Remove(ctx, id); err != nil {
				opts.logf("remove %s: %v", id, err)
			}
		})
	}
	wg.Wait()
}
