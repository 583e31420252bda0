package ports

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Worker processes: the test binary re-executed with these variables set
// allocates ports and prints "PORT OWNER" lines, then exits, leaving its
// reservations behind.
const (
	envWorker     = "BERTH_PORTS_TEST_WORKER"
	envDir        = "BERTH_PORTS_TEST_DIR"
	envRange      = "BERTH_PORTS_TEST_RANGE"
	envOwner      = "BERTH_PORTS_TEST_OWNER"
	envGoroutines = "BERTH_PORTS_TEST_GOROUTINES"
	envEach       = "BERTH_PORTS_TEST_EACH"
)

func TestMain(m *testing.M) {
	if os.Getenv(envWorker) == "1" {
		if err := runWorker(); err != nil {
			fmt.Fprintln(os.Stderr, "worker:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runWorker() error {
	r, err := ParseRange(os.Getenv(envRange))
	if err != nil {
		return err
	}
	goroutines, err1 := strconv.Atoi(os.Getenv(envGoroutines))
	each, err2 := strconv.Atoi(os.Getenv(envEach))
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	a, err := New(Options{Dir: os.Getenv(envDir), BindAddr: "127.0.0.1", Alive: aliveAlways})
	if err != nil {
		return err
	}
	// Start barrier: the parent closes stdin once every worker runs.
	if _, err := io.Copy(io.Discard, os.Stdin); err != nil {
		return err
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	errs := make([]error, goroutines)
	for g := range goroutines {
		owner := fmt.Sprintf("%s-g%d", os.Getenv(envOwner), g)
		wg.Go(func() {
			for range each {
				p, err := a.Allocate(context.Background(), r, owner)
				if err != nil {
					errs[g] = err
					return
				}
				mu.Lock()
				fmt.Printf("%d %s\n", p, owner)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

type worker struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	out   bytes.Buffer
	err   bytes.Buffer
}

// startWorkers starts n workers, each running goroutines×each allocations
// over r in dir, all released at once.
func startWorkers(t *testing.T, n int, dir string, r Range, goroutines, each int) []*worker {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ws := make([]*worker, n)
	for i := range ws {
		w := &worker{cmd: exec.Command(exe, "-test.run=^$")}
		w.cmd.Env = append(os.Environ(),
			envWorker+"=1", envDir+"="+dir, envRange+"="+r.String(),
			envOwner+"="+fmt.Sprintf("p%d", i),
			envGoroutines+"="+strconv.Itoa(goroutines), envEach+"="+strconv.Itoa(each))
		w.cmd.Stdout, w.cmd.Stderr = &w.out, &w.err
		if w.stdin, err = w.cmd.StdinPipe(); err != nil {
			t.Fatal(err)
		}
		if err := w.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { w.cmd.Process.Kill(); w.cmd.Wait() })
		ws[i] = w
	}
	for _, w := range ws {
		w.stdin.Close()
	}
	return ws
}

// waitWorkers waits for every worker and returns port → owner.
func waitWorkers(t *testing.T, ws []*worker) map[int]string {
	t.Helper()
	got := map[int]string{}
	for i, w := range ws {
		if err := w.cmd.Wait(); err != nil {
			t.Fatalf("worker %d: %v\n%s", i, err, w.err.String())
		}
		sc := bufio.NewScanner(&w.out)
		for sc.Scan() {
			portStr, owner, _ := strings.Cut(sc.Text(), " ")
			p, err := strconv.Atoi(portStr)
			if err != nil {
				t.Fatalf("worker %d printed %q", i, sc.Text())
			}
			if prev, dup := got[p]; dup {
				t.Fatalf("port %d handed to %s and %s", p, prev, owner)
			}
			got[p] = owner
		}
	}
	return got
}

// 8 processes, each with 5 goroutines allocating 5 ports (200 in all) over
// 300 ports: no port is handed out twice.
func TestAllocateProcesses(t *testing.T) {
	dir := t.TempDir()
	r := quietRange(t, 300)
	ws := startWorkers(t, 8, dir, r, 5, 5)
	got := waitWorkers(t, ws)
	if len(got) != 200 {
		t.Fatalf("got %d distinct ports, want 200", len(got))
	}
	for p := range got {
		if !r.contains(p) {
			t.Fatalf("port %d outside %s", p, r)
		}
	}
	// The reservations outlive the workers, with the right owners.
	onDisk := owners(t, dir)
	if len(onDisk) != 200 {
		t.Fatalf("%d reservation files, want 200", len(onDisk))
	}
	for p, o := range got {
		if onDisk[p] != o {
			t.Errorf("port %d: file says owner %q, worker said %q", p, onDisk[p], o)
		}
	}
}

// A worker reserves the only port of a range and exits; the reservation
// holds while its owner lives or is young, and is reclaimed after.
func TestReservationOutlivesProcess(t *testing.T) {
	dir := t.TempDir()
	r := quietRange(t, 1)
	got := waitWorkers(t, startWorkers(t, 1, dir, r, 1, 1))
	owner := got[r.Min]
	if owner == "" {
		t.Fatalf("worker got %v, want port %d", got, r.Min)
	}

	clk := &clock{}
	var alive bool
	var aliveErr error
	a := newAllocator(t, Options{Dir: dir, Now: clk.now, Alive: func(_ context.Context, o string) (bool, error) {
		if o != owner {
			t.Errorf("Alive(%q), want only %q", o, owner)
		}
		return alive, aliveErr
	}})
	ctx := context.Background()
	expectHeld := func(step string) {
		t.Helper()
		if p, err := a.Allocate(ctx, r, "sb-new"); !errors.Is(err, ErrNoFreePort) {
			t.Fatalf("%s: Allocate = %d, %v; want the port held", step, p, err)
		}
		if freed, err := a.Reclaim(ctx); len(freed) != 0 {
			t.Fatalf("%s: Reclaim freed %v (%v)", step, freed, err)
		}
		if owners(t, dir)[r.Min] != owner {
			t.Fatalf("%s: reservation gone", step)
		}
	}

	alive, clk.offset = true, DefaultGrace+1
	expectHeld("owner alive, grace passed")

	alive, clk.offset = false, DefaultGrace/2
	expectHeld("owner gone, still young")

	alive, aliveErr, clk.offset = false, errors.New("docker down"), DefaultGrace+1
	expectHeld("Alive fails")
	if _, err := a.Reclaim(ctx); err == nil || !strings.Contains(err.Error(), "docker down") {
		t.Fatalf("Reclaim hid Alive's error: %v", err)
	}

	aliveErr = nil
	freed, err := a.Reclaim(ctx)
	if err != nil || !slices.Equal(freed, []int{r.Min}) {
		t.Fatalf("Reclaim = %v, %v; want [%d]", freed, err, r.Min)
	}
	if len(owners(t, dir)) != 0 {
		t.Fatal("reclaimed file still there")
	}
	if p, err := a.Allocate(ctx, r, "sb-new"); err != nil || p != r.Min {
		t.Fatalf("Allocate after reclaim = %d, %v", p, err)
	}
}

// Allocate itself takes over a dead owner's port, without a Reclaim.
func TestAllocateTakesOverDeadOwner(t *testing.T) {
	dir := t.TempDir()
	r := quietRange(t, 1)
	waitWorkers(t, startWorkers(t, 1, dir, r, 1, 1))
	clk := &clock{offset: DefaultGrace + 1}
	a := newAllocator(t, Options{Dir: dir, Now: clk.now, Alive: func(context.Context, string) (bool, error) { return false, nil }})
	if p, err := a.Allocate(context.Background(), r, "sb-new"); err != nil || p != r.Min {
		t.Fatalf("Allocate = %d, %v", p, err)
	}
	if got := owners(t, dir); got[r.Min] != "sb-new" {
		t.Fatalf("owners = %v", got)
	}
}
