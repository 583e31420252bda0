package config

import (
	"fmt"
	"math"
	"net/netip"
	"strconv"
	"strings"

	"github.com/distribution/reference"

	"github.com/berth-dev/berth/internal/ports"
)

// Keys of the [sandbox] table whose names other files need.
const (
	keyKwargs    = "docker_runtime_kwargs"
	keyBuildArgs = "runtime_extra_build_args"
	envPrefix    = "SANDBOX_"
)

// field describes one [sandbox] key: where its value lives and how to check
// it. The field's Go type (through ptr) decides how TOML and environment
// values are read.
type field struct {
	key   string
	ptr   func(*Sandbox) any
	check func(Sandbox) problems // nil: any value of the type is fine
}

// envName is the environment variable that overrides the key.
func (f field) envName() string { return envPrefix + strings.ToUpper(f.key) }

// fields lists every [sandbox] key berth reads, in documentation order.
var fields = []field{
	{"base_container_image", func(s *Sandbox) any { return &s.BaseContainerImage }, checkBaseImage},
	{"runtime_container_image", func(s *Sandbox) any { return &s.RuntimeContainerImage }, checkRuntimeImage},
	{"volumes", func(s *Sandbox) any { return &s.Volumes }, func(s Sandbox) problems { return checkVolumes(s.Volumes) }},
	{"use_host_network", func(s *Sandbox) any { return &s.UseHostNetwork }, nil},
	{"runtime_binding_address", func(s *Sandbox) any { return &s.RuntimeBindingAddress }, checkBindingAddress},
	{"vscode_port", func(s *Sandbox) any { return &s.VSCodePort }, checkVSCodePort},
	{"enable_gpu", func(s *Sandbox) any { return &s.EnableGPU }, nil},
	{"cuda_visible_devices", func(s *Sandbox) any { return &s.CUDAVisibleDevices }, checkCUDADevices},
	{keyKwargs, func(s *Sandbox) any { return &s.DockerRuntimeKwargs }, func(s Sandbox) problems {
		_, ps := parseLimits(s.DockerRuntimeKwargs)
		return ps
	}},
	{"runtime_startup_env_vars", func(s *Sandbox) any { return &s.RuntimeStartupEnvVars }, func(s Sandbox) problems {
		return checkEnvVars(s.RuntimeStartupEnvVars)
	}},
	{"runtime_extra_deps", func(s *Sandbox) any { return &s.RuntimeExtraDeps }, checkExtraDeps},
	{"force_rebuild_runtime", func(s *Sandbox) any { return &s.ForceRebuildRuntime }, nil},
	{keyBuildArgs, func(s *Sandbox) any { return &s.RuntimeExtraBuildArgs }, func(s Sandbox) problems {
		_, ps := parseBuildArgs(s.RuntimeExtraBuildArgs)
		return ps
	}},
	{"timeout", func(s *Sandbox) any { return &s.Timeout }, checkTimeout},
	{"user_id", func(s *Sandbox) any { return &s.UserID }, checkUserID},
	{"additional_networks", func(s *Sandbox) any { return &s.AdditionalNetworks }, checkNetworks},
	{"network", func(s *Sandbox) any { return &s.Network }, checkNetwork},
	{"agent_port_range", func(s *Sandbox) any { return &s.AgentPortRange }, func(s Sandbox) problems { return checkRange(s.AgentPortRange) }},
	{"vscode_port_range", func(s *Sandbox) any { return &s.VSCodePortRange }, func(s Sandbox) problems { return checkRange(s.VSCodePortRange) }},
	{"app_port_range_1", func(s *Sandbox) any { return &s.AppPortRange1 }, func(s Sandbox) problems { return checkRange(s.AppPortRange1) }},
	{"app_port_range_2", func(s *Sandbox) any { return &s.AppPortRange2 }, func(s Sandbox) problems { return checkRange(s.AppPortRange2) }},
	{"publish_vscode", func(s *Sandbox) any { return &s.PublishVSCode }, nil},
	{"publish_app_ports", func(s *Sandbox) any { return &s.PublishAppPorts }, func(s Sandbox) problems {
		if s.PublishAppPorts < 0 || s.PublishAppPorts > 2 {
			return one(strconv.Itoa(s.PublishAppPorts), "must be 0, 1 or 2")
		}
		return nil
	}},
	{"read_only_rootfs", func(s *Sandbox) any { return &s.ReadOnlyRootfs }, nil},
	{"tmpfs", func(s *Sandbox) any { return &s.Tmpfs }, checkTmpfs},
}

func checkNetwork(s Sandbox) problems {
	switch s.Network {
	case "", "bridge", "none", "internal", "host":
	default:
		return one(show(s.Network), `must be "bridge", "none", "internal" or "host"`)
	}
	if s.UseHostNetwork && s.Network != "" && s.Network != "host" {
		return one(show(s.Network), "contradicts use_host_network = true")
	}
	return nil
}

func checkNetworks(s Sandbox) problems {
	for _, n := range s.AdditionalNetworks {
		if n == "" || strings.ContainsAny(n, " /,") {
			return one(show(n), "must be Docker network names")
		}
	}
	return nil
}

func checkRange(v string) problems {
	if v == "" {
		return nil
	}
	if _, err := ports.ParseRange(v); err != nil {
		return problems{{Value: show(v), Err: err, Reason: `must be a port range like "30000-39999"`}}
	}
	return nil
}

// PortRanges returns the configured port ranges over def (the platform's).
func (s Sandbox) PortRanges(def ports.Ranges) (ports.Ranges, error) {
	out := def
	for _, x := range []struct {
		v   string
		dst *ports.Range
	}{{s.AgentPortRange, &out.Agent}, {s.VSCodePortRange, &out.VSCode}, {s.AppPortRange1, &out.App1}, {s.AppPortRange2, &out.App2}} {
		if x.v == "" {
			continue
		}
		r, err := ports.ParseRange(x.v)
		if err != nil {
			return def, err
		}
		*x.dst = r
	}
	return out, nil
}

// fieldKeys returns the names of all keys, for suggestions.
func fieldKeys() []string {
	out := make([]string, len(fields))
	for i, f := range fields {
		out[i] = f.key
	}
	return out
}

func one(value, reason string) problems {
	return problems{{Value: value, Reason: reason}}
}

func checkBaseImage(s Sandbox) problems {
	if s.BaseContainerImage == "" {
		if s.RuntimeContainerImage == "" {
			return one(`""`, "must name an image unless runtime_container_image is set")
		}
		return nil
	}
	return checkImageRef(s.BaseContainerImage)
}

func checkRuntimeImage(s Sandbox) problems {
	if s.RuntimeContainerImage == "" {
		return nil
	}
	return checkImageRef(s.RuntimeContainerImage)
}

func checkImageRef(ref string) problems {
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return problems{{Value: show(ref), Err: err,
			Reason: fmt.Sprintf(`must be an image reference like "debian:bookworm-slim" (%v)`, err)}}
	}
	return nil
}

func checkBindingAddress(s Sandbox) problems {
	a, err := netip.ParseAddr(s.RuntimeBindingAddress)
	if err != nil || a.Zone() != "" {
		return one(show(s.RuntimeBindingAddress), `must be an IP address, e.g. "127.0.0.1" or "0.0.0.0"`)
	}
	return nil
}

func checkVSCodePort(s Sandbox) problems {
	if s.VSCodePort < 0 || s.VSCodePort > 65535 {
		return one(strconv.Itoa(s.VSCodePort), "must be 0 (none) or a port 1..65535")
	}
	return nil
}

func checkCUDADevices(s Sandbox) problems {
	if s.CUDAVisibleDevices == "" {
		return nil
	}
	seen := map[uint64]bool{}
	for id := range strings.SplitSeq(s.CUDAVisibleDevices, ",") {
		n, err := strconv.ParseUint(id, 10, 31)
		if err != nil || !allDigits(id) || seen[n] {
			return one(show(s.CUDAVisibleDevices), `must be "" (all GPUs) or distinct GPU numbers, comma-separated, e.g. "0,2"`)
		}
		seen[n] = true
	}
	return nil
}

func checkExtraDeps(s Sandbox) problems {
	if strings.ContainsRune(s.RuntimeExtraDeps, 0) {
		return one(show(s.RuntimeExtraDeps), "must not contain a NUL byte")
	}
	return nil
}

func checkTimeout(s Sandbox) problems {
	if s.Timeout.Duration <= 0 {
		return one(s.Timeout.String(), `must be positive: seconds (120) or a duration ("2m")`)
	}
	return nil
}

func checkUserID(s Sandbox) problems {
	if s.UserID < 0 || s.UserID > math.MaxInt32 {
		return one(strconv.Itoa(s.UserID), "must be a uid 0..2147483647 (0 = root)")
	}
	return nil
}
