package sandbox

// Limits are a sandbox's resource limits. Zero means "not set" (the
// backend's default) except where a pointer tells set from unset. The names
// follow docker-py's run() keyword arguments, which OpenHands users write in
// sandbox.docker_runtime_kwargs.
type Limits struct {
	Memory           int64  // mem_limit, bytes
	MemorySwap       int64  // memswap_limit, bytes; -1 = unlimited swap
	ShmSize          int64  // shm_size, bytes
	NanoCPUs         int64  // nano_cpus, 1e9 = one CPU
	CPUPeriod        int64  // cpu_period, microseconds
	CPUQuota         int64  // cpu_quota, microseconds; -1 = no quota
	PidsLimit        int64  // pids_limit; -1 = unlimited
	MemorySwappiness *int64 // mem_swappiness, 0..100
	OOMKillDisable   *bool  // oom_kill_disable
	CpusetCpus       string // cpuset_cpus, e.g. "0-1,3"
	Runtime          string // OCI runtime, e.g. "runc" or "runsc"
	Ulimits          []Ulimit
}

// Ulimit is one entry of the ulimits list; -1 means unlimited.
type Ulimit struct {
	Name       string
	Soft, Hard int64
}

// GPUs asks for GPUs. DeviceIDs empty means all of them.
type GPUs struct {
	Enabled   bool
	DeviceIDs []string
}

// Network modes of a sandbox.
const (
	NetworkBridge   = "bridge"   // the default bridge: outside reachable, agent port published
	NetworkNone     = "none"     // no network at all; berth talks to the agent over a unix socket
	NetworkInternal = "internal" // a berth network without outside access; agent over a unix socket
	NetworkHost     = "host"     // the host's network namespace
)
