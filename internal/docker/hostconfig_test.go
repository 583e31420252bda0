package docker

import (
	"reflect"
	"slices"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/sandbox"
)

func TestHostConfigSecureDefaults(t *testing.T) {
	h := hostConfig(sandbox.Spec{})
	if h.Privileged {
		t.Error("privileged")
	}
	if h.Init == nil || !*h.Init {
		t.Error("no init")
	}
	if !slices.Contains(h.SecurityOpt, "no-new-privileges:true") {
		t.Errorf("security opts %v", h.SecurityOpt)
	}
	if !slices.Equal(h.CapDrop, []string{"ALL"}) || slices.Contains(h.CapAdd, "SYS_ADMIN") || slices.Contains(h.CapAdd, "NET_RAW") {
		t.Errorf("caps: drop %v add %v", h.CapDrop, h.CapAdd)
	}
	if h.PidsLimit == nil || *h.PidsLimit != defaultPidsLimit {
		t.Errorf("default pids limit %v", h.PidsLimit)
	}
	if len(h.DeviceRequests) != 0 || len(h.Binds) != 0 {
		t.Errorf("devices %v binds %v", h.DeviceRequests, h.Binds)
	}
}

func TestHostConfigLimits(t *testing.T) {
	sw, off := int64(0), false
	h := hostConfig(sandbox.Spec{Limits: sandbox.Limits{
		Memory: 256 << 20, MemorySwap: 256 << 20, MemorySwappiness: &sw, OOMKillDisable: &off,
		NanoCPUs: 1_500_000_000, PidsLimit: 100, CpusetCpus: "0", ShmSize: 64 << 20, Runtime: "runsc",
		Ulimits: []sandbox.Ulimit{{Name: "nofile", Soft: 1024, Hard: 2048}},
	}})
	r := h.Resources
	if r.Memory != 256<<20 || r.MemorySwap != 256<<20 || *r.MemorySwappiness != 0 || *r.OomKillDisable || r.NanoCPUs != 1_500_000_000 ||
		*r.PidsLimit != 100 || r.CpusetCpus != "0" || h.ShmSize != 64<<20 || h.Runtime != "runsc" {
		t.Errorf("resources %+v shm %d runtime %q", r, h.ShmSize, h.Runtime)
	}
	if len(h.Ulimits) != 1 || *h.Ulimits[0] != (container.Ulimit{Name: "nofile", Soft: 1024, Hard: 2048}) {
		t.Errorf("ulimits %v", h.Ulimits)
	}
}

func TestHostConfigGPUs(t *testing.T) {
	cases := []struct {
		gpus sandbox.GPUs
		want []container.DeviceRequest
	}{
		{sandbox.GPUs{}, nil},
		{sandbox.GPUs{Enabled: true}, []container.DeviceRequest{{Driver: "nvidia", Count: -1, Capabilities: [][]string{{"gpu"}}}}},
		{sandbox.GPUs{Enabled: true, DeviceIDs: []string{"0", "2"}}, []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: []string{"0", "2"}, Capabilities: [][]string{{"gpu"}}}}},
	}
	for _, c := range cases {
		if got := hostConfig(sandbox.Spec{GPUs: c.gpus}).DeviceRequests; !reflect.DeepEqual(got, c.want) {
			t.Errorf("GPUs %+v: requests %+v, want %+v", c.gpus, got, c.want)
		}
	}
}
