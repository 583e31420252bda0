package config

import (
	"github.com/berth-dev/berth/internal/sandbox"
	"github.com/berth-dev/berth/internal/units"

	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Limits is the typed view of docker_runtime_kwargs: the sandbox's
// resource limits, as the domain defines them.
type Limits = sandbox.Limits

// Ulimit is one entry of the ulimits list; -1 means unlimited.
type Ulimit = sandbox.Ulimit

// Limits parses DockerRuntimeKwargs. A key whose value is None (from a
// Python literal) counts as unset; privileged is accepted only as false or
// None. On error it returns the zero Limits and
// every problem, each naming its key.
func (s Sandbox) Limits() (Limits, error) {
	l, ps := parseLimits(s.DockerRuntimeKwargs)
	if len(ps) > 0 {
		return Limits{}, errors.Join(ps.errs("sandbox." + keyKwargs)...)
	}
	return l, nil
}

// kwargKeys lists the docker_runtime_kwargs berth supports, sorted.
var kwargKeys = []string{
	"cpu_period", "cpu_quota", "cpuset_cpus", "mem_limit", "mem_swappiness",
	"memswap_limit", "nano_cpus", "oom_kill_disable", "pids_limit", "runtime",
	"shm_size", "ulimits",
}

// kwargHints points docker-py kwargs berth manages itself to the setting
// that does the job.
var kwargHints = map[string]string{
	"environment":     "set by berth; use sandbox.runtime_startup_env_vars",
	"volumes":         "set by berth; use sandbox.volumes",
	"mounts":          "set by berth; use sandbox.volumes",
	"network_mode":    "set by berth; use sandbox.use_host_network",
	"ports":           "set by berth, which publishes the sandbox's ports itself",
	"device_requests": "set by berth; use sandbox.enable_gpu and sandbox.cuda_visible_devices",
	"user":            "set by berth; use sandbox.user_id",
	"image":           "set by berth; use sandbox.base_container_image or sandbox.runtime_container_image",
	"cpus":            "use nano_cpus: 1000000000 per CPU",
}

// minMemory is Docker's smallest accepted memory limit.
const minMemory = 6 << 20

const sizeWant = `must be a size: bytes as an integer, or a string like "512m" or "4g"`

func parseLimits(kw map[string]any) (Limits, problems) {
	var l Limits
	var ps problems
	for _, k := range slices.Sorted(maps.Keys(kw)) {
		v := kw[k]
		if v == nil {
			continue
		}
		switch k {
		case "mem_limit":
			l.Memory = sizeArg(&ps, k, v)
			if l.Memory > 0 && l.Memory < minMemory {
				ps.add(k, show(v), "must be at least 6m (Docker's minimum), or 0 for no limit")
			}
		case "memswap_limit":
			if n, ok := asInt(v); ok && n == -1 || v == "-1" {
				l.MemorySwap = -1
			} else {
				l.MemorySwap = sizeArg(&ps, k, v)
			}
		case "shm_size":
			l.ShmSize = sizeArg(&ps, k, v)
		case "mem_swappiness":
			n := intArg(&ps, k, v, 0, 100, "must be an integer 0..100")
			l.MemorySwappiness = &n
		case "oom_kill_disable":
			b, ok := v.(bool)
			if !ok {
				ps.add(k, show(v), "must be true or false")
			}
			l.OOMKillDisable = &b
		case "cpu_period":
			l.CPUPeriod = intArg(&ps, k, v, 1000, 1000000, "must be an integer 1000..1000000 (microseconds)")
		case "cpu_quota":
			l.CPUQuota = intArg(&ps, k, v, -1, math.MaxInt64, "must be an integer >= 1000 (microseconds), or -1 for no quota")
			if l.CPUQuota >= 0 && l.CPUQuota < 1000 {
				ps.add(k, show(v), "must be an integer >= 1000 (microseconds), or -1 for no quota")
			}
		case "nano_cpus":
			l.NanoCPUs = intArg(&ps, k, v, 0, math.MaxInt64, "must be a non-negative integer (1000000000 per CPU)")
		case "pids_limit":
			l.PidsLimit = intArg(&ps, k, v, -1, math.MaxInt64, "must be a positive integer, or -1 for unlimited")
			if l.PidsLimit == 0 {
				ps.add(k, show(v), "must be a positive integer, or -1 for unlimited")
			}
		case "cpuset_cpus":
			l.CpusetCpus = stringArg(&ps, k, v, checkCpuset, `must be CPU numbers and ranges like "0-1,3"`)
		case "runtime":
			l.Runtime = stringArg(&ps, k, v, checkRuntimeName, `must be a runtime name like "runc" or "runsc"`)
		case "ulimits":
			l.Ulimits = ulimitsArg(&ps, v)
		case "privileged":
			if v != false {
				ps.add(k, show(v), "berth never runs privileged sandboxes; remove this key")
			}
		default:
			ps = append(ps, unknownKwarg(k))
		}
	}
	crossCheckLimits(&ps, l)
	return l, ps
}

func crossCheckLimits(ps *problems, l Limits) {
	if l.MemorySwap > 0 && l.Memory == 0 {
		ps.add("memswap_limit", strconv.FormatInt(l.MemorySwap, 10), "needs mem_limit to be set as well")
	}
	if l.MemorySwap > 0 && l.Memory > 0 && l.MemorySwap < l.Memory {
		ps.add("memswap_limit", strconv.FormatInt(l.MemorySwap, 10),
			fmt.Sprintf("must be at least mem_limit (%d bytes): it counts memory plus swap", l.Memory))
	}
	if l.NanoCPUs > 0 && (l.CPUPeriod != 0 || l.CPUQuota != 0) {
		ps.add("nano_cpus", strconv.FormatInt(l.NanoCPUs, 10), "cannot be combined with cpu_period or cpu_quota; use one or the other")
	}
}

func unknownKwarg(k string) *Error {
	hint := kwargHints[k]
	if hint == "" {
		if s := suggest(k, kwargKeys); s != "" {
			hint = fmt.Sprintf("did you mean %q?", s)
		} else {
			hint = "not supported by berth"
		}
	}
	return &Error{Sub: k, Unknown: true,
		Reason: hint + "; supported: " + strings.Join(kwargKeys, ", ")}
}

// asInt accepts an integer, or a float with an integral value in range.
func asInt(v any) (int64, bool) {
	switch v := v.(type) {
	case int64:
		return v, true
	case int:
		return int64(v), true
	case float64:
		if v == math.Trunc(v) && v >= math.MinInt64 && v < math.MaxInt64 {
			return int64(v), true
		}
	}
	return 0, false
}

func intArg(ps *problems, k string, v any, lo, hi int64, want string) int64 {
	n, ok := asInt(v)
	if !ok || n < lo || n > hi {
		ps.add(k, show(v), want)
	}
	return n
}

func sizeArg(ps *problems, k string, v any) int64 {
	if s, ok := v.(string); ok {
		n, err := units.Parse(s)
		if err != nil {
			*ps = append(*ps, &Error{Sub: k, Value: show(v), Reason: sizeWant + " (" + err.Error() + ")", Err: err})
		}
		return n
	}
	n, ok := asInt(v)
	if !ok || n < 0 {
		ps.add(k, show(v), sizeWant)
	}
	return n
}

func stringArg(ps *problems, k string, v any, check func(string) bool, want string) string {
	s, ok := v.(string)
	if !ok || !check(s) {
		ps.add(k, show(v), want)
	}
	return s
}

// checkCpuset accepts "0", "0-3", "0-1,3": non-negative numbers and
// ascending ranges, comma-separated, no spaces.
func checkCpuset(s string) bool {
	if s == "" {
		return false
	}
	for item := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(item, "-")
		a, err := strconv.ParseUint(lo, 10, 16)
		if err != nil || !allDigits(lo) {
			return false
		}
		if isRange {
			b, err := strconv.ParseUint(hi, 10, 16)
			if err != nil || !allDigits(hi) || b < a {
				return false
			}
		}
	}
	return true
}

// checkRuntimeName accepts a Docker runtime name: letters, digits, '.', '_', '-'.
func checkRuntimeName(s string) bool {
	if s == "" || len(s) > 128 || !isLetter(s[0]) && !isDigit(s[0]) {
		return false
	}
	for i := range len(s) {
		if c := s[i]; !isLetter(c) && !isDigit(c) && c != '.' && c != '-' {
			return false
		}
	}
	return true
}
