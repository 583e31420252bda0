package docker

import (
	"context"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/image"
	"github.com/berth-dev/berth/internal/sandbox"
)

// countingResolver counts resolutions.
type countingResolver struct {
	ImageResolver
	calls atomic.Int32
}

func (c *countingResolver) Resolve(ctx context.Context, spec sandbox.ImageSpec) (image.Result, error) {
	c.calls.Add(1)
	return c.ImageResolver.Resolve(ctx, spec)
}

// goneOnce answers the first ContainerCreate as the engine does when the
// image is gone.
type goneOnce struct {
	Engine
	done atomic.Bool
}

func (g *goneOnce) ContainerCreate(ctx context.Context, opts client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	if g.done.CompareAndSwap(false, true) {
		return client.ContainerCreateResult{}, fmt.Errorf("injected: %w", cerrdefs.ErrNotFound.WithMessage("No such image: "+opts.Config.Image))
	}
	return g.Engine.ContainerCreate(ctx, opts)
}

func TestImageCacheAndTrace(t *testing.T) {
	h := newHarness(t, nil)
	res := &countingResolver{ImageResolver: h.rt.opts.Images}
	h.rt.opts.Images = res
	s := spec(t)

	var tr Trace
	h.create(t, s)
	h.createWith(WithTrace(context.Background(), &tr), t, s)
	if n := res.calls.Load(); n != 1 {
		t.Errorf("two creates resolved the image %d times, want 1 (cached)", n)
	}
	var names []string
	for _, p := range tr.Phases() {
		names = append(names, p.Name)
		if p.Duration < 0 {
			t.Errorf("phase %s: %v", p.Name, p.Duration)
		}
	}
	want := []string{PhaseValidate, PhaseImage, PhasePrepare, PhasePorts, PhaseCreate, PhaseStart, PhaseReady, PhaseInspect}
	if !slices.Equal(names, want) {
		t.Errorf("phases %v, want %v", names, want)
	}

	// The cached image is gone (removed behind berth's back): the create
	// resolves it again, once, and succeeds.
	h.rt.engine = &goneOnce{Engine: h.rt.engine}
	h.create(t, s)
	if n := res.calls.Load(); n != 2 {
		t.Errorf("resolutions after a gone image: %d, want 2", n)
	}
}

// createWith is create with a context.
func (h *harness) createWith(ctx context.Context, t *testing.T, s sandbox.Spec) sandbox.Sandbox {
	t.Helper()
	sb, err := h.rt.Create(ctx, s)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		if err := h.rt.Remove(context.Background(), sb.ID); err != nil {
			t.Errorf("cleanup: remove %s: %v", sb.ID, err)
		}
	})
	return sb
}
