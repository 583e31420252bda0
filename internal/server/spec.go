package server

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Bounds of a create request, as `berth create` checks its flags.
const (
	minMemory  = 6 << 20
	maxCPUs    = 1024
	maxTimeout = 30 * time.Minute
)

// specFor lays a create request over the configured spec, for tenant t.
// Every mistake is reported, each naming its field.
func (s *Server) specFor(t *tenant, req client.CreateRequest) (sandbox.Spec, error) {
	spec, err := s.opts.SpecDefaults()
	if err != nil {
		return sandbox.Spec{}, fmt.Errorf("server: configured sandbox spec: %w", err)
	}
	spec.Env = maps.Clone(spec.Env)
	if spec.Env == nil {
		spec.Env = map[string]string{}
	}
	spec.Labels = maps.Clone(spec.Labels)
	if spec.Labels == nil {
		spec.Labels = map[string]string{}
	}
	spec.Networks = slices.Clone(spec.Networks)
	spec.Volumes = slices.Clone(spec.Volumes)
	spec.Tmpfs = slices.Clone(spec.Tmpfs)
	spec.Publish = slices.Clone(spec.Publish)
	spec.Debug = false
	spec.Owner = t.Name

	var bad []string
	badf := func(format string, args ...any) { bad = append(bad, fmt.Sprintf(format, args...)) }
	var hostAccess []string

	spec.Name = req.Name
	if req.Image != "" {
		spec.Image.Base, spec.Image.Runtime = req.Image, ""
	}
	if req.RuntimeImage != "" {
		spec.Image.Runtime = req.RuntimeImage
	}
	maps.Copy(spec.Env, req.Env)
	for k, v := range req.Labels {
		if k == MemoryLabel {
			badf("labels: %q is set by the server", k)
			continue
		}
		spec.Labels[k] = v
	}
	if req.Network != "" {
		spec.Network, spec.UseHostNetwork = req.Network, req.Network == sandbox.NetworkHost
		if spec.UseHostNetwork {
			hostAccess = append(hostAccess, "network host")
		}
	}
	if len(req.Networks) > 0 {
		spec.Networks = append(spec.Networks, req.Networks...)
		hostAccess = append(hostAccess, "networks")
	}
	if req.Memory != 0 {
		if req.Memory < minMemory {
			badf("memory %d: at least 6m (%d bytes)", req.Memory, minMemory)
		}
		spec.Limits.Memory = int64(req.Memory)
	}
	if req.CPUs != 0 {
		if req.CPUs < 0 || req.CPUs > maxCPUs {
			badf("cpus %v: a positive number of CPUs up to %d, like 1.5", req.CPUs, maxCPUs)
		}
		spec.Limits.NanoCPUs, spec.Limits.CPUPeriod, spec.Limits.CPUQuota = int64(req.CPUs*1e9), 0, 0
	}
	if req.PidsLimit != 0 {
		if req.PidsLimit < -1 {
			badf("pids_limit %d: a positive number, or -1 for none", req.PidsLimit)
		}
		spec.Limits.PidsLimit = req.PidsLimit
	}
	if len(req.Volumes) > 0 {
		spec.Volumes = append(spec.Volumes, req.Volumes...)
		hostAccess = append(hostAccess, "volumes")
	}
	spec.Tmpfs = append(spec.Tmpfs, req.Tmpfs...)
	spec.Publish = append(spec.Publish, req.Publish...)
	if req.VSCode {
		spec.VSCode = true
	}
	if req.AppPorts != 0 {
		spec.AppPorts = req.AppPorts
	}
	if req.UserID != nil {
		spec.UserID = *req.UserID
	}
	if req.ReadOnly != nil {
		spec.ReadOnlyRootfs = *req.ReadOnly
	}
	if g := strings.TrimSpace(req.GPUs); g != "" {
		if g == "all" {
			spec.GPUs = sandbox.GPUs{Enabled: true}
		} else {
			spec.GPUs = sandbox.GPUs{Enabled: true, DeviceIDs: strings.Split(g, ",")}
		}
		hostAccess = append(hostAccess, "gpus")
	}
	if req.Timeout != 0 {
		d := time.Duration(req.Timeout)
		if d < 0 || d > maxTimeout {
			badf("timeout %s: between 0 and %s", d, maxTimeout)
		}
		spec.Timeout = d
	}
	if err := s.checkSandboxPolicy(t, req.SecurityPolicy); err != nil {
		badf("%v", err)
	}
	spec.SecurityPolicy = req.SecurityPolicy
	if len(bad) > 0 {
		return sandbox.Spec{}, badRequestf("%s", strings.Join(bad, "; "))
	}
	if len(hostAccess) > 0 && !t.trusted() {
		return sandbox.Spec{}, fmt.Errorf("%w: tenant %q may not ask for %s: they reach the host (allow_host_access is off)",
			errForbidden, t.Name, strings.Join(hostAccess, ", "))
	}
	if err := spec.Validate(); err != nil {
		return sandbox.Spec{}, err
	}
	if spec.Limits.Memory > 0 {
		spec.Labels[MemoryLabel] = strconv.FormatInt(spec.Limits.Memory, 10)
	}
	return spec, nil
}
