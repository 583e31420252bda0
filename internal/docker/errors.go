package docker

import (
	"fmt"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/sandbox"
)

// translate maps an engine error onto berth's sentinels, keeping the text.
// It is the one place that knows how Docker reports things.
func translate(err error) error {
	switch {
	case err == nil:
		return nil
	case client.IsErrConnectionFailed(err):
		return fmt.Errorf("%w: %v", sandbox.ErrUnavailable, err)
	case cerrdefs.IsNotFound(err):
		return fmt.Errorf("%w: %w", sandbox.ErrNotFound, err)
	case cerrdefs.IsConflict(err):
		return fmt.Errorf("%w: %w", sandbox.ErrConflict, err)
	default:
		return err
	}
}
