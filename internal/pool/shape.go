package pool

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/berth-dev/berth/internal/sandbox"
)

// ShapeKey is the key of the pool that can serve spec: a hash of every
// field of the spec except the parts a claim applies to a sandbox already
// running (Name, Env, Labels, Owner, SecurityPolicy) and those that only matter while a
// create waits (Debug, Timeout). ForceRebuild is left out too: a spec
// with it never takes a pooled sandbox.
//
// spec must be normalized (docker.Runtime.Normalize), so that two specs a
// create treats alike (network "" and "bridge", say) have one key.
func ShapeKey(spec sandbox.Spec) string {
	s := shapeOf(spec)
	// encoding/json sorts map keys: the text, so the hash, is stable.
	b, err := json.Marshal(s)
	if err != nil {
		panic(fmt.Sprintf("pool: encode spec: %v", err)) // a Spec has only plain fields
	}
	h := sha256.Sum256(append([]byte("berth-pool/v1\n"), b...))
	return hex.EncodeToString(h[:])[:16]
}

// shapeOf is spec without its per-request parts, with empty lists and
// maps made nil and host networking written one way.
func shapeOf(spec sandbox.Spec) sandbox.Spec {
	s := spec
	s.Name, s.Env, s.Labels, s.Owner, s.Debug, s.Timeout, s.SecurityPolicy = "", nil, nil, "", false, 0, ""
	s.Image.ForceRebuild = false
	if s.UseHostNetwork {
		s.Network, s.UseHostNetwork = sandbox.NetworkHost, false
	}
	if len(s.Image.BuildArgs) == 0 {
		s.Image.BuildArgs = nil
	}
	s.Networks = nilIfEmpty(s.Networks)
	s.Volumes = nilIfEmpty(s.Volumes)
	s.Tmpfs = nilIfEmpty(s.Tmpfs)
	s.Publish = nilIfEmpty(s.Publish)
	s.GPUs.DeviceIDs = nilIfEmpty(s.GPUs.DeviceIDs)
	s.Limits.Ulimits = nilIfEmpty(s.Limits.Ulimits)
	return s
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}
