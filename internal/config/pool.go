package config

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"

	"github.com/berth-dev/berth/internal/mounts"
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/units"
)

// Pool is the [pool] table: warm pools of sandboxes that berth serve keeps
// created, started and ready, one per shape. A create whose spec has the
// shape of a pool claims one of its sandboxes instead of starting one.
//
//	[pool]
//	concurrency = 1                  # pooled sandboxes created at once
//	[[pool.shapes]]
//	image = "debian:bookworm-slim"   # plus create fields: memory, cpus, network, volumes...
//	size = 3
type Pool struct {
	Concurrency int         `toml:"concurrency"` // refill creates at once, over every shape; 0 = 1
	Shapes      []PoolShape `toml:"shapes"`
}

// PoolShape is one [[pool.shapes]] entry: how many sandboxes to keep ready,
// and the create fields that make the shape, laid over the [sandbox]
// settings exactly as the same fields of a create request are. Unset
// fields keep the [sandbox] value.
type PoolShape struct {
	Size         int      `toml:"size"`
	Image        string   `toml:"image"`         // base image
	RuntimeImage string   `toml:"runtime_image"` // a ready runtime image
	Network      string   `toml:"network"`       // bridge, none, internal or host
	Networks     []string `toml:"networks"`      // more Docker networks to join
	Memory       int64    `toml:"memory"`        // bytes; written as a size ("512m") or bytes
	CPUs         float64  `toml:"cpus"`
	PidsLimit    int64    `toml:"pids_limit"` // -1 = none
	Volumes      []string `toml:"volumes"`
	Tmpfs        []string `toml:"tmpfs"`
	Publish      []int    `toml:"publish"`
	VSCode       *bool    `toml:"vscode"`
	AppPorts     *int     `toml:"app_ports"`
	UserID       *int     `toml:"user_id"`
	ReadOnly     *bool    `toml:"read_only"`
	GPUs         string   `toml:"gpus"` // "all" or "0,1"
}

// Apply lays the shape's fields over spec (the [sandbox] settings), as
// berth serve lays a create request's.
func (p PoolShape) Apply(spec *sandbox.Spec) {
	if p.Image != "" {
		spec.Image.Base, spec.Image.Runtime = p.Image, ""
	}
	if p.RuntimeImage != "" {
		spec.Image.Runtime = p.RuntimeImage
	}
	if p.Network != "" {
		spec.Network, spec.UseHostNetwork = p.Network, p.Network == sandbox.NetworkHost
	}
	spec.Networks = append(slices.Clone(spec.Networks), p.Networks...)
	if p.Memory != 0 {
		spec.Limits.Memory = p.Memory
	}
	if p.CPUs != 0 {
		spec.Limits.NanoCPUs, spec.Limits.CPUPeriod, spec.Limits.CPUQuota = int64(p.CPUs*1e9), 0, 0
	}
	if p.PidsLimit != 0 {
		spec.Limits.PidsLimit = p.PidsLimit
	}
	spec.Volumes = append(slices.Clone(spec.Volumes), p.Volumes...)
	spec.Tmpfs = append(slices.Clone(spec.Tmpfs), p.Tmpfs...)
	spec.Publish = append(slices.Clone(spec.Publish), p.Publish...)
	if p.VSCode != nil {
		spec.VSCode = *p.VSCode
	}
	if p.AppPorts != nil {
		spec.AppPorts = *p.AppPorts
	}
	if p.UserID != nil {
		spec.UserID = *p.UserID
	}
	if p.ReadOnly != nil {
		spec.ReadOnlyRootfs = *p.ReadOnly
	}
	switch g := strings.TrimSpace(p.GPUs); {
	case g == "all":
		spec.GPUs = sandbox.GPUs{Enabled: true}
	case g != "":
		spec.GPUs = sandbox.GPUs{Enabled: true, DeviceIDs: strings.Split(g, ",")}
	}
}

// poolShapeKeys are the keys of a [[pool.shapes]] entry, sorted.
var poolShapeKeys = []string{
	"app_ports", "cpus", "gpus", "image", "memory", "network", "networks", "pids_limit",
	"publish", "read_only", "runtime_image", "size", "tmpfs", "user_id", "volumes", "vscode",
}

// decodePool reads the [pool] table, checking every value; each problem
// names its key ("pool.shapes[1].memory").
func decodePool(v any) (Pool, []error) {
	var p Pool
	table, ok := normalize(v).(map[string]any)
	if !ok {
		return p, []error{&Error{Key: "pool", Value: show(v), Reason: "must be a table ([pool])"}}
	}
	var errs []error
	bad := func(key string, value any, reason string) {
		errs = append(errs, &Error{Key: key, Value: show(value), Reason: reason})
	}
	for _, k := range slices.Sorted(maps.Keys(table)) {
		val := table[k]
		switch k {
		case "concurrency":
			n, ok := asInt(val)
			if !ok || n < 0 || n > 64 {
				bad("pool.concurrency", val, "must be an integer 0..64 (0 = 1)")
				continue
			}
			p.Concurrency = int(n)
		case "shapes":
			list, ok := val.([]any)
			if !ok {
				bad("pool.shapes", val, "must be an array of tables ([[pool.shapes]])")
				continue
			}
			for i, item := range list {
				s, es := decodePoolShape(fmt.Sprintf("pool.shapes[%d]", i), item)
				errs = append(errs, es...)
				p.Shapes = append(p.Shapes, s)
			}
		default:
			e := &Error{Key: "pool." + k, Unknown: true}
			if s := suggest(k, []string{"concurrency", "shapes"}); s != "" {
				e.Reason = fmt.Sprintf("did you mean %q?", s)
			}
			errs = append(errs, e)
		}
	}
	return p, errs
}

func decodePoolShape(key string, v any) (PoolShape, []error) {
	var s PoolShape
	table, ok := v.(map[string]any)
	if !ok {
		return s, []error{&Error{Key: key, Value: show(v), Reason: "must be a table"}}
	}
	var errs []error
	bad := func(k string, value any, reason string) {
		errs = append(errs, &Error{Key: key + "." + k, Value: show(value), Reason: reason})
	}
	str := func(k string, val any, check func(string) string) string {
		x, ok := val.(string)
		if !ok {
			bad(k, val, "must be a string")
			return ""
		}
		if check != nil {
			if reason := check(x); reason != "" {
				bad(k, val, reason)
				return ""
			}
		}
		return x
	}
	strs := func(k string, val any, check func(string) string) []string {
		list, ok := val.([]any)
		if !ok {
			bad(k, val, "must be a list of strings")
			return nil
		}
		out := make([]string, 0, len(list))
		for _, item := range list {
			if x := str(k, item, check); x != "" {
				out = append(out, x)
			}
		}
		return out
	}
	boolean := func(k string, val any) *bool {
		b, ok := val.(bool)
		if !ok {
			bad(k, val, "must be true or false")
			return nil
		}
		return &b
	}
	integer := func(k string, val any, lo, hi int64, want string) (int64, bool) {
		n, ok := asInt(val)
		if !ok || n < lo || n > hi {
			bad(k, val, want)
			return 0, false
		}
		return n, true
	}
	sizeSet := false
	for _, k := range slices.Sorted(maps.Keys(table)) {
		val := table[k]
		switch k {
		case "size":
			n, _ := integer(k, val, 0, 1000, "must be an integer 0..1000")
			s.Size, sizeSet = int(n), true
		case "image":
			s.Image = str(k, val, imageReason)
		case "runtime_image":
			s.RuntimeImage = str(k, val, imageReason)
		case "network":
			s.Network = str(k, val, func(x string) string {
				switch x {
				case "bridge", "none", "internal", "host":
					return ""
				}
				return `must be "bridge", "none", "internal" or "host"`
			})
		case "networks":
			s.Networks = strs(k, val, func(x string) string {
				if x == "" || strings.ContainsAny(x, " /,") {
					return "must be Docker network names"
				}
				return ""
			})
		case "memory":
			var n int64
			var err error
			switch x := val.(type) {
			case string:
				n, err = units.ParseSize(x)
			default:
				var ok bool
				if n, ok = asInt(val); !ok {
					err = fmt.Errorf("not a size")
				}
			}
			if err != nil || n < minMemory {
				bad(k, val, `must be a size of at least 6m, like "512m" or "2g"`)
				continue
			}
			s.Memory = n
		case "cpus":
			f, ok := asFloat(val)
			if !ok || f <= 0 || f > 1024 {
				bad(k, val, "must be a positive number of CPUs, like 1.5")
				continue
			}
			s.CPUs = f
		case "pids_limit":
			n, ok := integer(k, val, -1, math.MaxInt32, "must be a positive number, or -1 for none")
			if ok && n == 0 {
				bad(k, val, "must be a positive number, or -1 for none")
				continue
			}
			s.PidsLimit = n
		case "volumes":
			s.Volumes = strs(k, val, func(x string) string {
				if _, err := mounts.ParseVolumeList([]string{x}); err != nil {
					return err.Error()
				}
				return ""
			})
		case "tmpfs":
			s.Tmpfs = strs(k, val, func(x string) string {
				if _, err := mounts.ParseTmpfs(x); err != nil {
					return err.Error()
				}
				return ""
			})
		case "publish":
			list, ok := val.([]any)
			if !ok {
				bad(k, val, "must be a list of container ports")
				continue
			}
			for _, item := range list {
				if n, ok := integer(k, item, 1, 65535, "must be container ports 1..65535"); ok {
					s.Publish = append(s.Publish, int(n))
				}
			}
		case "vscode":
			s.VSCode = boolean(k, val)
		case "read_only":
			s.ReadOnly = boolean(k, val)
		case "app_ports":
			if n, ok := integer(k, val, 0, 2, "must be 0, 1 or 2"); ok {
				x := int(n)
				s.AppPorts = &x
			}
		case "user_id":
			if n, ok := integer(k, val, 0, math.MaxInt32, "must be a uid 0..2147483647 (0 = root)"); ok {
				x := int(n)
				s.UserID = &x
			}
		case "gpus":
			s.GPUs = str(k, val, func(x string) string {
				if x == "all" || checkCUDADevices(Sandbox{CUDAVisibleDevices: x}) == nil {
					return ""
				}
				return `must be "all" or GPU numbers like "0,1"`
			})
		default:
			e := &Error{Key: key + "." + k, Unknown: true}
			if sg := suggest(k, poolShapeKeys); sg != "" {
				e.Reason = fmt.Sprintf("did you mean %q?", sg)
			}
			errs = append(errs, e)
		}
	}
	if !sizeSet {
		errs = append(errs, &Error{Key: key + ".size", Reason: "is required: how many sandboxes of the shape to keep ready"})
	}
	return s, errs
}

func imageReason(ref string) string {
	if ps := checkImageRef(ref); len(ps) > 0 {
		return ps[0].Reason
	}
	return ""
}

func asFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int64:
		return float64(x), true
	}
	return 0, false
}
