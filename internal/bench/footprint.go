package bench

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/sandbox"
)

// Footprint is what idle sandboxes cost: N created at once, measured after
// they settle.
type Footprint struct {
	N  int `json:"n"`
	OK int `json:"ok"`
	// AgentRSSMiB is the resident memory of each sandbox's berth-agent
	// (from `docker top`; absent without the docker CLI).
	AgentRSSMiB Spread `json:"agent_rss_mib"`
	// CgroupMiB is each sandbox's memory use by its cgroup (page cache
	// included), as its agent reports it.
	CgroupMiB Spread `json:"cgroup_mib"`
	// HostPerSandboxMiB is the drop of the host's MemAvailable, per sandbox.
	HostPerSandboxMiB float64 `json:"host_per_sandbox_mib"`
	Leftovers         int     `json:"leftovers"`
}

// Spread is a distribution of values.
type Spread struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	Max float64 `json:"max"`
}

func spread(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	rank := func(p float64) float64 { return s[max(0, int(math.Ceil(p*float64(len(s))))-1)] }
	r := func(x float64) float64 { return math.Round(x*100) / 100 }
	return Spread{P50: r(rank(0.5)), P95: r(rank(0.95)), Max: r(s[len(s)-1])}
}

// footprintConcurrency bounds the creates of the footprint scenario.
const footprintConcurrency = 4

// FootprintScenario creates N idle sandboxes, lets them settle, measures
// each agent's RSS and each sandbox's memory, then removes them all and
// checks that nothing is left.
func FootprintScenario(ctx context.Context, t Target, opts Options) (Report, error) {
	opts = opts.withDefaults()
	rep := newReport("footprint", opts)
	d := newDocker(opts)
	before := memAvailable()
	ids := make([]string, opts.N)
	sbs := make([]sandbox.Sandbox, opts.N)
	sem := make(chan struct{}, footprintConcurrency)
	var wg sync.WaitGroup
	var created []time.Duration
	var mu sync.Mutex
	fail := 0
	for i := range opts.N {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			t0 := time.Now()
			sb, err := t.Runtime.Create(ctx, opts.Spec)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				fail++
				opts.logf("footprint create %d: %v", i, err)
				return
			}
			created = append(created, time.Since(t0))
			ids[i], sbs[i] = sb.ID, sb
		})
	}
	wg.Wait()
	defer func() {
		removeAll(ctx, t.Runtime, ids, opts)
	}()
	opts.logf("footprint: %d sandboxes up; letting them settle", len(created))
	select {
	case <-ctx.Done():
		return rep, ctx.Err()
	case <-time.After(3 * time.Second):
	}
	after := memAvailable()
	f := &Footprint{N: opts.N, OK: len(created)}
	var rss, cg []float64
	for _, sb := range sbs {
		if sb.ID == "" {
			continue
		}
		if info, err := t.Agents(sb).ServerInfo(ctx); err == nil {
			cg = append(cg, float64(info.Resources.MemoryBytes)/(1<<20))
		}
		if d != nil {
			if kib, err := agentRSS(ctx, d, sb.ContainerID); err == nil {
				rss = append(rss, float64(kib)/1024)
			} else {
				opts.logf("docker top %s: %v", sb.ID, err)
			}
		}
	}
	f.AgentRSSMiB, f.CgroupMiB = spread(rss), spread(cg)
	if before > 0 && after > 0 && len(created) > 0 {
		f.HostPerSandboxMiB = math.Round(float64(before-after)/float64(len(created))/1024*100) / 100
	}
	rep.add("footprint_create_to_ready", SideBerth, created, fail, "")
	removeAll(ctx, t.Runtime, ids, opts)
	ids = nil
	left, err := t.Runtime.List(ctx, sandbox.ListOptions{All: true, Label: opts.Labels})
	if err != nil {
		return rep, err
	}
	f.Leftovers = len(left)
	rep.Footprint = f
	return rep, nil
}

// agentRSS is the RSS (KiB) of berth-agent in a container, from docker top.
func agentRSS(ctx context.Context, d *dockerCLI, cid string) (int64, error) {
	out, err := d.run(ctx, "top", cid, "-o", "pid,rss,args")
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(out, "\n") {
		// PID RSS COMMAND: Docker's init runs "docker-init -- berth-agent".
		fields := strings.Fields(line)
		if len(fields) >= 3 && strings.Contains(line, "berth-agent") && !strings.Contains(fields[2], "init") {
			return strconv.ParseInt(fields[1], 10, 64)
		}
	}
	return 0, fmt.Errorf("no berth-agent process in %q", out)
}

// memAvailable is the host's MemAvailable in KiB (0 if unknown).
func memAvailable() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemAvailable:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return n
		}
	}
	return 0
}
