package agent

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/internal/agentapi"
)

// cgroupRoot is where the sandbox's own cgroup is mounted inside its
// container (Docker mounts it there, v1 or v2).
const cgroupRoot = "/sys/fs/cgroup"

// resources reads the sandbox's cgroup (v2, else v1) and the space of / and
// the workdir.
func resources(root, workdir string) agentapi.Resources {
	r := agentapi.Resources{MemoryLimitBytes: -1, CPULimit: -1, PidsLimit: -1}
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		r.MemoryBytes = readInt(filepath.Join(root, "memory.current"))
		r.MemoryLimitBytes = readLimit(filepath.Join(root, "memory.max"))
		r.CPUSeconds = float64(statField(filepath.Join(root, "cpu.stat"), "usage_usec")) / 1e6
		if f := strings.Fields(readText(filepath.Join(root, "cpu.max"))); len(f) == 2 && f[0] != "max" {
			q, _ := strconv.ParseFloat(f[0], 64)
			p, _ := strconv.ParseFloat(f[1], 64)
			if p > 0 {
				r.CPULimit = q / p
			}
		}
	} else {
		r.MemoryBytes = readInt(filepath.Join(root, "memory", "memory.usage_in_bytes"))
		if l := readInt(filepath.Join(root, "memory", "memory.limit_in_bytes")); l > 0 && l < 1<<62 {
			r.MemoryLimitBytes = l // v1 shows "no limit" as a huge number
		}
		r.CPUSeconds = float64(readInt(filepath.Join(root, "cpuacct", "cpuacct.usage"))) / 1e9
		q := readInt(filepath.Join(root, "cpu", "cpu.cfs_quota_us"))
		if p := readInt(filepath.Join(root, "cpu", "cpu.cfs_period_us")); q > 0 && p > 0 {
			r.CPULimit = float64(q) / float64(p)
		}
	}
	r.Pids, r.PidsLimit = pidsUsage(root)
	for _, p := range []string{"/", workdir} {
		var st syscall.Statfs_t
		if err := syscall.Statfs(p, &st); err == nil {
			r.Disks = append(r.Disks, agentapi.Disk{Path: p, TotalBytes: int64(st.Blocks) * st.Bsize, FreeBytes: int64(st.Bavail) * st.Bsize})
		}
	}
	return r
}

// pidsUsage reads the tasks of the sandbox's cgroup and their limit (-1:
// none), v2 else v1.
func pidsUsage(root string) (current, limit int64) {
	dir := filepath.Join(root, "pids")
	if _, err := os.Stat(filepath.Join(root, "cgroup.controllers")); err == nil {
		dir = root
	}
	return readInt(filepath.Join(dir, "pids.current")), readLimit(filepath.Join(dir, "pids.max"))
}

func readText(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func readInt(path string) int64 {
	n, _ := strconv.ParseInt(readText(path), 10, 64)
	return n
}

// readLimit reads a limit file where "max" (or nothing) means none: -1.
func readLimit(path string) int64 {
	t := readText(path)
	if t == "" || t == "max" {
		return -1
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// statField reads "key value" lines (cpu.stat) and returns key's value.
func statField(path, key string) int64 {
	for line := range strings.SplitSeq(readText(path), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return 0
}
