package ports

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

func TestNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "ports")
	newAllocator(t, Options{Dir: dir})
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o700 {
		t.Errorf("dir mode = %v, want 0700", fi.Mode().Perm())
	}
	if _, err := New(Options{}); err == nil {
		t.Error("New without Dir: no error")
	}
	// 203.0.113.0/24 is TEST-NET-3: not an address of this host.
	if _, err := New(Options{Dir: dir, BindAddr: "203.0.113.7"}); err == nil || !strings.Contains(err.Error(), "203.0.113.7") {
		t.Errorf("New with a foreign BindAddr: err = %v", err)
	}
}

func TestAllocateInvalid(t *testing.T) {
	a := newAllocator(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	for _, r := range []Range{{0, 10}, {10, 5}, {65000, 65536}} {
		if p, err := a.Allocate(ctx, r, "x"); err == nil {
			t.Errorf("Allocate(%v) = %d, want error", r, p)
		}
	}
	if p, err := a.Allocate(ctx, Range{30000, 30001}, ""); err == nil {
		t.Errorf("Allocate with no owner = %d, want error", p)
	}
}

func TestAllocateGoroutines(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			dir := t.TempDir()
			r := quietRange(t, 300)
			one := newAllocator(t, Options{Dir: dir, Alive: aliveAlways})
			const workers, each = 8, 25
			results := make([][]int, workers)
			errs := make([]error, workers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for w := range workers {
				a := one
				if !shared {
					a = newAllocator(t, Options{Dir: dir, Alive: aliveAlways})
				}
				wg.Go(func() {
					<-start
					for range each {
						p, err := a.Allocate(context.Background(), r, fmt.Sprintf("sb-%d", w))
						if err != nil {
							errs[w] = err
							return
						}
						results[w] = append(results[w], p)
					}
				})
			}
			close(start)
			wg.Wait()
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			got := map[int]string{}
			for w, ps := range results {
				for _, p := range ps {
					if !r.contains(p) {
						t.Fatalf("port %d outside %s", p, r)
					}
					if prev, dup := got[p]; dup {
						t.Fatalf("port %d handed to sb-%d and %s", p, w, prev)
					}
					got[p] = fmt.Sprintf("sb-%d", w)
				}
			}
			if len(got) != workers*each {
				t.Fatalf("got %d distinct ports, want %d", len(got), workers*each)
			}
			onDisk := owners(t, dir)
			if len(onDisk) != len(got) {
				t.Fatalf("%d reservation files, want %d", len(onDisk), len(got))
			}
			for p, o := range got {
				if onDisk[p] != o {
					t.Errorf("port %d: file says owner %q, want %q", p, onDisk[p], o)
				}
			}
		})
	}
}

func TestAllocateSkipsForeignListener(t *testing.T) {
	tests := []struct{ listen, bind string }{
		{"127.0.0.1", "127.0.0.1"},
		{"127.0.0.1", "0.0.0.0"},
		{"127.0.0.1", ""},
		{"0.0.0.0", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.listen+"/"+tt.bind, func(t *testing.T) {
			ln, err := net.Listen("tcp4", tt.listen+":0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			p := ln.Addr().(*net.TCPAddr).Port
			dir := t.TempDir()
			a, err := New(Options{Dir: dir, BindAddr: tt.bind})
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			got, err := a.Allocate(ctx, Range{p, p}, "sb")
			if !errors.Is(err, ErrNoFreePort) || !strings.Contains(err.Error(), "1 in use") {
				t.Fatalf("Allocate(%d-%d) = %d, %v; want ErrNoFreePort with 1 in use", p, p, got, err)
			}
			if len(owners(t, dir)) != 0 {
				t.Fatal("a file was left for the port in use")
			}
			// In a wider range it is never handed out.
			r := Range{max(1, p-5), min(65535, p+5)}
			for {
				got, err := a.Allocate(ctx, r, "sb")
				if errors.Is(err, ErrNoFreePort) {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				if got == p {
					t.Fatalf("got port %d, on which a listener is open", p)
				}
			}
		})
	}
}

func TestAllocateExhausted(t *testing.T) {
	r := quietRange(t, 5)
	a := newAllocator(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	var got []int
	for range 5 {
		p, err := a.Allocate(ctx, r, "sb")
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, p)
	}
	slices.Sort(got)
	if want := []int{r.Min, r.Min + 1, r.Min + 2, r.Min + 3, r.Min + 4}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	p, err := a.Allocate(ctx, r, "sb")
	if !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("6th Allocate = %d, %v; want ErrNoFreePort", p, err)
	}
	for _, want := range []string{r.String(), "tried 5 of 5 ports", "5 reserved", `"sb"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	if p != 0 {
		t.Errorf("failed Allocate returned port %d", p)
	}
}

func TestAllocateExclude(t *testing.T) {
	r := quietRange(t, 3)
	a := newAllocator(t, Options{Dir: t.TempDir()})
	ctx := context.Background()
	p, err := a.Allocate(ctx, r, "sb", r.Min, r.Max, 1)
	if err != nil || p != r.Min+1 {
		t.Fatalf("Allocate excluding %d and %d = %d, %v; want %d", r.Min, r.Max, p, err, r.Min+1)
	}
	p, err = a.Allocate(ctx, r, "sb", r.Min, r.Max)
	if !errors.Is(err, ErrNoFreePort) {
		t.Fatalf("Allocate with all excluded or taken = %d, %v", p, err)
	}
}

// The scan starts where Rand says and wraps past Max to Min.
func TestAllocateStartAndWrap(t *testing.T) {
	r := quietRange(t, 5)
	dir := t.TempDir()
	ctx := context.Background()
	a := newAllocator(t, Options{Dir: dir, Rand: seededRand(5, 2)})
	if p, err := a.Allocate(ctx, r, "sb"); err != nil || p != r.Min+2 {
		t.Fatalf("Allocate = %d, %v; want start port %d", p, err, r.Min+2)
	}
	other := newAllocator(t, Options{Dir: dir})
	if p, err := other.Allocate(ctx, Range{r.Max, r.Max}, "x"); err != nil {
		t.Fatal(p, err)
	}
	b := newAllocator(t, Options{Dir: dir, Rand: seededRand(5, 4)})
	if p, err := b.Allocate(ctx, r, "sb"); err != nil || p != r.Min {
		t.Fatalf("Allocate = %d, %v; want wrap to %d", p, err, r.Min)
	}
}

func TestAllocateContext(t *testing.T) {
	r := quietRange(t, 20)
	dir := t.TempDir()
	old := newAllocator(t, Options{Dir: dir})
	for range 20 {
		if _, err := old.Allocate(context.Background(), r, "old"); err != nil {
			t.Fatal(err)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if p, err := old.Allocate(ctx, r, "sb"); !errors.Is(err, context.Canceled) || p != 0 {
		t.Fatalf("Allocate with canceled ctx = %d, %v", p, err)
	}

	// Cancelled during the scan: from inside the first Alive call.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	calls := 0
	clk := &clock{offset: DefaultGrace + 1}
	a := newAllocator(t, Options{Dir: dir, Now: clk.now, Alive: func(ctx context.Context, _ string) (bool, error) {
		calls++
		cancel()
		return false, ctx.Err()
	}})
	p, err := a.Allocate(ctx, r, "sb")
	if !errors.Is(err, context.Canceled) || p != 0 {
		t.Fatalf("Allocate canceled mid-scan = %d, %v", p, err)
	}
	if !strings.Contains(err.Error(), "tried 1 of 20") || calls != 1 {
		t.Fatalf("did not stop at once: %v (Alive called %d times)", err, calls)
	}
	if got := owners(t, dir); len(got) != 20 {
		t.Fatalf("reservations lost: %v", got)
	}
}

func TestAllocateTakesOverUnreadable(t *testing.T) {
	r := quietRange(t, 1)
	dir := t.TempDir()
	if err := os.WriteFile(portPath(dir, r.Min), []byte("{garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := newAllocator(t, Options{Dir: dir})
	if p, err := a.Allocate(context.Background(), r, "sb"); err != nil || p != r.Min {
		t.Fatalf("Allocate = %d, %v", p, err)
	}
	if got := owners(t, dir); got[r.Min] != "sb" {
		t.Fatalf("owners = %v", got)
	}
}

// A port locked by another allocator is skipped, then tried again once the
// rest of the range is done.
func TestAllocateRetriesBusy(t *testing.T) {
	r := quietRange(t, 2)
	dir := t.TempDir()
	old := newAllocator(t, Options{Dir: dir})
	if _, err := old.Allocate(context.Background(), Range{r.Max, r.Max}, "old"); err != nil {
		t.Fatal(err)
	}
	lock, err := lockFile(portPath(dir, r.Min), true, false)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()

	// Held to the end: reported as locked.
	a := newAllocator(t, Options{Dir: dir, Rand: seededRand(2, 0)})
	p, err := a.Allocate(context.Background(), r, "sb")
	if !errors.Is(err, ErrNoFreePort) || !strings.Contains(err.Error(), "1 locked by other allocators") {
		t.Fatalf("Allocate = %d, %v", p, err)
	}

	// Let go while the scan looks at the other port (in its Alive call).
	clk := &clock{offset: DefaultGrace + 1}
	b := newAllocator(t, Options{Dir: dir, Now: clk.now, Rand: seededRand(2, 0), Alive: func(context.Context, string) (bool, error) {
		lock.Close()
		return true, nil
	}})
	if p, err := b.Allocate(context.Background(), r, "sb"); err != nil || p != r.Min {
		t.Fatalf("Allocate = %d, %v; want %d once unlocked", p, err, r.Min)
	}
}
