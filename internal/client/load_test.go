package client_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/client"
)

// Bounds of the load test, whatever the environment asks.
const (
	maxLoadDuration = 2 * time.Minute
	maxLoadClients  = 64
	maxLoadOps      = 200_000 // per client
)

// TestLoad drives berth serve on the real engine with N clients doing mixed
// exec calls for T seconds (loopback only), and fails on any error. It runs
// only when asked:
//
//	BERTH_LOAD_SECONDS=12 BERTH_LOAD_CLIENTS=8 go test -run TestLoad -v ./internal/client
func TestLoad(t *testing.T) {
	secs := os.Getenv("BERTH_LOAD_SECONDS")
	if secs == "" {
		t.Skip("set BERTH_LOAD_SECONDS to run the load test")
	}
	f, err := strconv.ParseFloat(secs, 64)
	if err != nil || f <= 0 {
		t.Fatalf("BERTH_LOAD_SECONDS=%q: want a positive number of seconds", secs)
	}
	dur := min(time.Duration(f*float64(time.Second)), maxLoadDuration)
	clients := 8
	if v := os.Getenv("BERTH_LOAD_CLIENTS"); v != "" {
		if clients, err = strconv.Atoi(v); err != nil || clients < 1 {
			t.Fatalf("BERTH_LOAD_CLIENTS=%q: want a positive number", v)
		}
	}
	clients = min(clients, maxLoadClients)

	es := newEngineServer(t)
	c := es.alice
	boxes := []string{es.create(t, c, client.CreateRequest{}).ID, es.create(t, c, client.CreateRequest{}).ID}

	type op struct {
		name string
		run  func(ctx context.Context, worker, i int, box string) error
	}
	ops := []op{
		{"exec true (REST)", func(ctx context.Context, _, _ int, box string) error {
			exit, err := c.Exec(ctx, box, client.ExecRequest{Cmd: []string{"true"}}, nil)
			if err == nil && exit.ExitCode != 0 {
				err = fmt.Errorf("exit %d", exit.ExitCode)
			}
			return err
		}},
		{"exec echo (REST)", func(ctx context.Context, w, i int, box string) error {
			want := fmt.Sprintf("%d-%d\n", w, i)
			out, _, _, err := c.ExecOutput(ctx, box, client.ExecRequest{Command: "echo " + want[:len(want)-1]})
			if err == nil && string(out) != want {
				err = fmt.Errorf("output %q, want %q", out, want)
			}
			return err
		}},
		{"exec echo (agent proxy)", func(ctx context.Context, w, i int, box string) error {
			want := fmt.Sprintf("p%d-%d\n", w, i)
			out, _, _, err := c.Agent(box).ExecOutput(ctx, agentapi.ExecRequest{Argv: []string{"echo", want[:len(want)-1]}})
			if err == nil && string(out) != want {
				err = fmt.Errorf("output %q, want %q", out, want)
			}
			return err
		}},
		{"session exec (REST)", func(ctx context.Context, w, i int, box string) error {
			want := fmt.Sprintf("s%d\n", i)
			out, _, _, err := c.ExecOutput(ctx, box, client.ExecRequest{Session: fmt.Sprintf("load-%d", w), Command: "echo s" + strconv.Itoa(i)})
			if err == nil && string(out) != want {
				err = fmt.Errorf("output %q, want %q", out, want)
			}
			return err
		}},
		{"file write+read (agent proxy)", func(ctx context.Context, w, i int, box string) error {
			path := fmt.Sprintf("/tmp/load-%d", w)
			want := fmt.Sprintf("file %d of client %d\n", i, w)
			if _, err := c.Agent(box).WriteFile(ctx, path, strings.NewReader(want), agentapi.WriteOptions{}); err != nil {
				return err
			}
			got, _, err := c.Agent(box).ReadFileBytes(ctx, path, agentapi.ReadOptions{})
			if err == nil && string(got) != want {
				err = fmt.Errorf("read %q, want %q", got, want)
			}
			return err
		}},
		{"get", func(ctx context.Context, _, _ int, box string) error {
			_, err := c.Get(ctx, box)
			return err
		}},
	}

	type sample struct {
		op int
		d  time.Duration
	}
	var (
		mu      sync.Mutex
		samples []sample
		errs    []error
	)
	ctx, cancel := context.WithTimeout(context.Background(), dur+time.Minute)
	defer cancel()
	deadline := time.Now().Add(dur)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []sample
			for i := 0; i < maxLoadOps && time.Now().Before(deadline); i++ {
				k := (w + i) % len(ops)
				t0 := time.Now()
				err := ops[k].run(ctx, w, i, boxes[(w+i)%len(boxes)])
				local = append(local, sample{k, time.Since(t0)})
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("client %d, %s #%d: %w", w, ops[k].name, i, err))
					mu.Unlock()
				}
			}
			mu.Lock()
			samples = append(samples, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)

	t.Logf("load: %d clients, %s, %d calls, %.0f calls/s, %d errors", clients, elapsed.Round(time.Millisecond),
		len(samples), float64(len(samples))/elapsed.Seconds(), len(errs))
	for k, o := range ops {
		var ds []time.Duration
		for _, s := range samples {
			if s.op == k {
				ds = append(ds, s.d)
			}
		}
		if len(ds) == 0 {
			continue
		}
		slices.Sort(ds)
		pct := func(p float64) time.Duration { return ds[min(len(ds)-1, int(p*float64(len(ds))))] }
		t.Logf("  %-26s n=%-6d p50=%-8s p95=%-8s p99=%-8s max=%s", o.name, len(ds),
			pct(.50).Round(10*time.Microsecond), pct(.95).Round(10*time.Microsecond),
			pct(.99).Round(10*time.Microsecond), ds[len(ds)-1].Round(10*time.Microsecond))
	}
	for i, err := range errs {
		if i == 10 {
			t.Errorf("... and %d more errors", len(errs)-10)
			break
		}
		t.Error(err)
	}
	if len(samples) == 0 {
		t.Error("no call was made")
	}
}
