package ports

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// quietRange returns a range of n ports below Linux's ephemeral range
// (32768+) on which nothing listens right now, so tests can expect exact
// results from it.
func quietRange(t *testing.T, n int) Range {
	t.Helper()
	for range 50 {
		base := 20000 + rand.IntN(12000-n)
		r := Range{base, base + n - 1}
		if allBindable(r) {
			return r
		}
	}
	t.Fatalf("no quiet range of %d ports found", n)
	return Range{}
}

func allBindable(r Range) bool {
	for p := r.Min; p <= r.Max; p++ {
		ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(p)))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

// clock is a settable Options.Now.
type clock struct{ offset time.Duration }

func (c *clock) now() time.Time { return time.Now().Add(c.offset) }

func newAllocator(t *testing.T, opts Options) *Allocator {
	t.Helper()
	if opts.BindAddr == "" {
		opts.BindAddr = "127.0.0.1"
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func aliveAlways(context.Context, string) (bool, error) { return true, nil }

// owners reads the owner of every reservation file in dir.
func owners(t *testing.T, dir string) map[int]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[int]string{}
	for _, e := range entries {
		p, ok := portFromName(e.Name())
		if !ok {
			t.Fatalf("stray file %s", e.Name())
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		res, err := readReservation(f, p)
		f.Close()
		if err != nil || res == nil {
			t.Fatalf("port %d: reservation %v, %v", p, res, err)
		}
		m[p] = res.Owner
	}
	return m
}

// seededRand returns a Rand whose first IntN(n) is want.
func seededRand(n, want int) *rand.Rand {
	for seed := uint64(0); ; seed++ {
		if rand.New(rand.NewPCG(seed, seed)).IntN(n) == want {
			return rand.New(rand.NewPCG(seed, seed))
		}
	}
}
