package docker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/berth-dev/berth/internal/sandbox"
)

// defaultImageCacheTTL is how long a resolved runtime image is reused
// without asking the engine again.
const defaultImageCacheTTL = 30 * time.Second

// imageCache remembers the runtime image each image spec resolved to, so a
// create does not inspect the base and runtime images every time. Its
// validity check costs nothing on the hot path: an entry is trusted for a
// TTL (a base image re-pulled under the same tag is noticed within it), and
// a create whose image has gone (ContainerCreate answers "no such image")
// forgets the entry and resolves again, once.
type imageCache struct {
	ttl time.Duration // <= 0: no caching
	now func() time.Time

	mu      sync.Mutex
	entries map[string]imageEntry
}

type imageEntry struct {
	ref string
	at  time.Time
}

func newImageCache(ttl time.Duration) *imageCache {
	return &imageCache{ttl: ttl, now: time.Now, entries: map[string]imageEntry{}}
}

// imageKey is the cache key of spec: every input of the resolution but
// ForceRebuild (which always resolves).
func imageKey(spec sandbox.ImageSpec) string {
	var b strings.Builder
	fmt.Fprintf(&b, "base=%q runtime=%q deps=%q", spec.Base, spec.Runtime, spec.ExtraDeps)
	for _, k := range slices.Sorted(maps.Keys(spec.BuildArgs)) {
		fmt.Fprintf(&b, " arg %q=%q", k, spec.BuildArgs[k])
	}
	return b.String()
}

// resolveImage returns the runtime image for spec, from the cache when it
// holds a fresh entry. cached reports whether it did.
func (r *Runtime) resolveImage(ctx context.Context, spec sandbox.ImageSpec) (ref string, cached bool, err error) {
	c := r.images
	key := imageKey(spec)
	if c.ttl > 0 && !spec.ForceRebuild {
		c.mu.Lock()
		e, ok := c.entries[key]
		c.mu.Unlock()
		if ok && c.now().Sub(e.at) < c.ttl {
			return e.ref, true, nil
		}
	}
	res, err := r.opts.Images.Resolve(ctx, spec)
	if err != nil {
		return "", false, err
	}
	if c.ttl > 0 {
		c.mu.Lock()
		c.entries[key] = imageEntry{ref: res.Ref, at: c.now()}
		c.mu.Unlock()
	}
	return res.Ref, false, nil
}

// forgetImage drops spec's entry: its image turned out to be gone.
func (r *Runtime) forgetImage(spec sandbox.ImageSpec) {
	r.images.mu.Lock()
	delete(r.images.entries, imageKey(spec))
	r.images.mu.Unlock()
}

// RuntimeImage resolves (or builds) the runtime image of spec, through the
// same cache as Create.
func (r *Runtime) RuntimeImage(ctx context.Context, spec sandbox.ImageSpec) (string, error) {
	ref, _, err := r.resolveImage(ctx, spec)
	return ref, err
}
