package docker

import (
	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/sandbox"
)

// keptCapabilities are all a sandbox keeps of Docker's default set: enough
// for the agent (root inside) to set up the sandbox user and run and signal
// commands as it. Raw sockets, mknod, chroot, audit writes and the rest are
// dropped; nothing is ever added beyond Docker's defaults.
var keptCapabilities = []string{
	"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID", "NET_BIND_SERVICE",
}

// defaultPidsLimit bounds the processes of a sandbox that sets no limit of
// its own, so that a fork bomb cannot exhaust the host.
const defaultPidsLimit = 4096

// hostConfig is everything about the container's host side that follows
// from the spec alone: init, security options, limits, devices.
func hostConfig(spec sandbox.Spec) *container.HostConfig {
	init := true
	l := spec.Limits
	pids := l.PidsLimit
	if pids == 0 {
		pids = defaultPidsLimit
	}
	h := &container.HostConfig{
		Init:           &init, // Docker's init reaps orphans and forwards signals to the agent
		SecurityOpt:    []string{"no-new-privileges:true"},
		CapDrop:        []string{"ALL"},
		CapAdd:         keptCapabilities,
		ReadonlyRootfs: spec.ReadOnlyRootfs,
		ShmSize:        l.ShmSize,
		Runtime:        l.Runtime,
		Resources: container.Resources{
			Memory:           l.Memory,
			MemorySwap:       l.MemorySwap,
			MemorySwappiness: l.MemorySwappiness,
			OomKillDisable:   l.OOMKillDisable,
			NanoCPUs:         l.NanoCPUs,
			CPUPeriod:        l.CPUPeriod,
			CPUQuota:         l.CPUQuota,
			CpusetCpus:       l.CpusetCpus,
			PidsLimit:        &pids,
		},
	}
	for _, u := range l.Ulimits {
		h.Ulimits = append(h.Ulimits, &container.Ulimit{Name: u.Name, Soft: u.Soft, Hard: u.Hard})
	}
	if spec.GPUs.Enabled || len(spec.GPUs.DeviceIDs) > 0 {
		req := container.DeviceRequest{Driver: "nvidia", Capabilities: [][]string{{"gpu"}}}
		if len(spec.GPUs.DeviceIDs) == 0 {
			req.Count = -1 // all
		} else {
			req.DeviceIDs = spec.GPUs.DeviceIDs
		}
		h.DeviceRequests = []container.DeviceRequest{req}
	}
	return h
}
