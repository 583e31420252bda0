package docker

import (
	"context"
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// ensureInternalNetwork makes the berth network of internal sandboxes: they
// reach each other on it, and nothing outside (Docker gives an internal
// network no route out).
func (r *Runtime) ensureInternalNetwork(ctx context.Context) error {
	_, err := r.engine.NetworkInspect(ctx, internalNetwork, client.NetworkInspectOptions{})
	if err == nil {
		return nil
	}
	if !cerrdefs.IsNotFound(err) {
		return fmt.Errorf("inspect network %s: %w", internalNetwork, translate(err))
	}
	_, err = r.engine.NetworkCreate(ctx, internalNetwork, client.NetworkCreateOptions{
		Driver:   "bridge",
		Internal: true,
		Labels:   map[string]string{"berth.managed": "true"},
	})
	if err != nil && !cerrdefs.IsConflict(err) { // another process may have made it meanwhile
		return fmt.Errorf("create network %s: %w", internalNetwork, translate(err))
	}
	return nil
}
