package ports

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// DefaultGrace is how long a reservation counts as live whatever Alive says,
// covering a create that has reserved its ports but not yet made its container.
const DefaultGrace = 10 * time.Minute

// ErrNoFreePort is wrapped by Allocate's error when every port of the range
// was tried and none could be reserved.
var ErrNoFreePort = errors.New("no free port")

// Options configure an Allocator.
type Options struct {
	// Dir holds one reservation file per reserved port; created 0700 if
	// absent. Every berth process that must not clash has to use the same
	// Dir, on a local file system (flock is unreliable over NFS).
	Dir string
	// BindAddr is the host address Docker will publish on (e.g. "127.0.0.1"
	// or "0.0.0.0"); the test bind of a candidate happens there. Empty means
	// the wildcard address, which clashes with a listener on any address.
	BindAddr string
	// Alive reports whether owner (a sandbox id) still exists. A reservation
	// past its grace whose owner is not alive is reclaimed; an error counts
	// as alive. Nil means every owner is alive: only Release and
	// ReleaseOwner then free ports.
	Alive func(ctx context.Context, owner string) (bool, error)
	// Grace keeps a reservation younger than this live even when Alive says
	// no (its create is in flight); 0 means DefaultGrace.
	Grace time.Duration
	// Logger receives debug and warning records; nil discards them.
	Logger *slog.Logger
	// Rand picks where each scan of a range starts; nil means a random seed.
	Rand *rand.Rand
	// Now is the clock reservations are stamped and aged with; nil means time.Now.
	Now func() time.Time
}

// Allocator reserves host ports. It is safe for concurrent use, and any
// number of Allocators, in any number of processes, may share one Dir.
type Allocator struct {
	dir      string
	bindAddr string
	alive    func(context.Context, string) (bool, error)
	grace    time.Duration
	log      *slog.Logger
	now      func() time.Time
	pid      int
	host     string

	mu  sync.Mutex // guards rnd, which is not safe for concurrent use
	rnd *rand.Rand
}

// New returns an Allocator on opts.Dir, creating the directory if needed. It
// fails when BindAddr is not an address of this host.
func New(opts Options) (*Allocator, error) {
	if !flockSupported {
		return nil, fmt.Errorf("ports: new: file locks are not supported on this OS")
	}
	if opts.Dir == "" {
		return nil, errors.New("ports: new: no reservation dir")
	}
	if opts.Grace < 0 {
		return nil, fmt.Errorf("ports: new: negative grace %s", opts.Grace)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("ports: new: %w", err)
	}
	a := &Allocator{
		dir:      opts.Dir,
		bindAddr: opts.BindAddr,
		alive:    opts.Alive,
		grace:    opts.Grace,
		log:      opts.Logger,
		now:      opts.Now,
		pid:      os.Getpid(),
		rnd:      opts.Rand,
	}
	if a.grace == 0 {
		a.grace = DefaultGrace
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rnd == nil {
		a.rnd = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	a.host, _ = os.Hostname()
	if err := a.testBind(0); err != nil {
		return nil, fmt.Errorf("ports: new: bind address %q unusable: %w", opts.BindAddr, err)
	}
	return a, nil
}

// testBind listens on BindAddr:port and closes the listener at once. It
// fails when anything on this host listens on a clashing address and port.
func (a *Allocator) testBind(port int) error {
	lc := net.ListenConfig{Control: noReuseAddr}
	ln, err := lc.Listen(context.Background(), "tcp", net.JoinHostPort(a.bindAddr, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return ln.Close()
}

func (a *Allocator) intN(n int) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.rnd.IntN(n)
}

// live reports whether reservation res still holds its port. aliveCache
// remembers Alive's answers within one scan.
func (a *Allocator) live(ctx context.Context, res *reservation, aliveCache map[string]bool) (bool, error) {
	if a.now().Sub(res.Created) < a.grace || a.alive == nil {
		return true, nil
	}
	if ok, seen := aliveCache[res.Owner]; seen {
		return ok, nil
	}
	ok, err := a.alive(ctx, res.Owner)
	if err != nil {
		aliveCache[res.Owner] = true
		return true, fmt.Errorf("ports: is owner %q of port %d alive: %w", res.Owner, res.Port, err)
	}
	aliveCache[res.Owner] = ok
	return ok, nil
}
