package client

import (
	"context"
	"time"
)

// PathPools is GET /api/v1/pools (every pool's state) and, followed by
// /{key}, PUT (resize one pool: admin tenants only).
const PathPools = "/api/v1/pools"

// MaxPoolSize is the largest size PUT /api/v1/pools/{key} accepts.
const MaxPoolSize = 1000

// PoolStats is the state of one warm pool. Its fields are those of
// pool.ShapeStats, in the same order, so berth serve converts one into
// the other (a field added to one side only does not compile).
type PoolStats struct {
	Key       string    `json:"key"` // the shape key: a hash of the pooled spec
	Image     string    `json:"image"`
	Network   string    `json:"network"`
	Memory    int64     `json:"memory,omitempty"`
	NanoCPUs  int64     `json:"nano_cpus,omitempty"`
	Size      int       `json:"size"`     // how many sandboxes the pool keeps ready
	Ready     int       `json:"ready"`    // ready now
	Filling   int       `json:"filling"`  // being created
	Claims    int64     `json:"claims"`   // creates served warm
	Misses    int64     `json:"misses"`   // creates of this shape that went cold: the pool was empty
	Failures  int64     `json:"failures"` // refill creates that failed
	LastError string    `json:"last_error,omitempty"`
	RetryAt   time.Time `json:"retry_at,omitzero"` // refills wait until then after failures
}

// PoolList is the answer of GET /api/v1/pools, in configuration order.
type PoolList struct {
	Items []PoolStats `json:"items"`
}

// PoolResizeRequest is the body of PUT /api/v1/pools/{key}.
type PoolResizeRequest struct {
	// Size is the pool's new size, 0 to MaxPoolSize; required.
	Size *int `json:"size"`
}

// Pools returns the state of the server's warm pools (none: an empty list).
func (c *Client) Pools(ctx context.Context) ([]PoolStats, error) {
	var out PoolList
	if err := c.call(ctx, "GET", PathPools, nil, &out); err != nil {
		return nil, err
	}
	return out.Items, nil
}

// ResizePool sets the size of the pool with shape key (admin tenants
// only) and returns its state; the server then fills it, or removes its
// extra sandboxes, in the background. The size lasts until the server
// restarts: its berth.toml is not changed.
func (c *Client) ResizePool(ctx context.Context, key string, size int) (PoolStats, error) {
	var out PoolStats
	err := c.call(ctx, "PUT", PathPools+"/"+escapeSegment(key), PoolResizeRequest{Size: &size}, &out)
	return out, err
}
