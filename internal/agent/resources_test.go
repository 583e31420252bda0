package agent

import (
	"os"
	"path/filepath"
	"testing"
)

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestResourcesCgroupV2(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"cgroup.controllers": "cpu memory pids",
		"memory.current":     "1048576",
		"memory.max":         "268435456",
		"cpu.stat":           "usage_usec 2500000\nuser_usec 1",
		"cpu.max":            "150000 100000",
		"pids.current":       "7",
		"pids.max":           "max",
	})
	r := resources(root, t.TempDir())
	if r.MemoryBytes != 1<<20 || r.MemoryLimitBytes != 256<<20 || r.CPUSeconds != 2.5 || r.CPULimit != 1.5 || r.Pids != 7 || r.PidsLimit != -1 {
		t.Errorf("v2: %+v", r)
	}
	if len(r.Disks) != 2 || r.Disks[0].Path != "/" || r.Disks[1].TotalBytes <= 0 {
		t.Errorf("disks: %+v", r.Disks)
	}
}

func TestResourcesCgroupV1(t *testing.T) {
	root := t.TempDir()
	writeFiles(t, root, map[string]string{
		"memory/memory.usage_in_bytes": "2097152",
		"memory/memory.limit_in_bytes": "9223372036854771712", // no limit
		"cpuacct/cpuacct.usage":        "3000000000",
		"cpu/cpu.cfs_quota_us":         "-1",
		"cpu/cpu.cfs_period_us":        "100000",
		"pids/pids.current":            "3",
		"pids/pids.max":                "4096",
	})
	r := resources(root, t.TempDir())
	if r.MemoryBytes != 2<<20 || r.MemoryLimitBytes != -1 || r.CPUSeconds != 3 || r.CPULimit != -1 || r.Pids != 3 || r.PidsLimit != 4096 {
		t.Errorf("v1: %+v", r)
	}
}
