package mounts

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/mount"
)

func TestDocker(t *testing.T) {
	ms, err := ParseVolumes("/src:/workspace,/data:/data:ro,cache:/cache,cache2:/c2:ro,/repo:/w/repo:overlay")
	if err != nil {
		t.Fatal(err)
	}
	tm, err := ParseTmpfs("/tmp:size=64m,mode=1777")
	if err != nil {
		t.Fatal(err)
	}
	plain, err := ParseTmpfs("/run")
	if err != nil {
		t.Fatal(err)
	}
	ms = append(ms, tm, plain)
	labels := map[string]string{"berth.id": "abc123", "berth.owner": "me"}
	var asked []Mount
	overlay := func(m Mount) (string, string) {
		asked = append(asked, m)
		return "/st/overlay/abc123/4/upper", "/st/overlay/abc123/4/work"
	}

	got := Docker(ms, overlay, labels)

	want := []mount.Mount{
		{Type: mount.TypeBind, Source: "/src", Target: "/workspace"},
		{Type: mount.TypeBind, Source: "/data", Target: "/data", ReadOnly: true},
		{Type: mount.TypeVolume, Source: "cache", Target: "/cache", VolumeOptions: &mount.VolumeOptions{Labels: labels}},
		{Type: mount.TypeVolume, Source: "cache2", Target: "/c2", ReadOnly: true, VolumeOptions: &mount.VolumeOptions{Labels: labels}},
		{Type: mount.TypeVolume, Target: "/w/repo", VolumeOptions: &mount.VolumeOptions{
			NoCopy: true,
			Labels: labels,
			DriverConfig: &mount.Driver{Name: "local", Options: map[string]string{
				"type":   "overlay",
				"device": "overlay",
				"o":      "lowerdir=/repo,upperdir=/st/overlay/abc123/4/upper,workdir=/st/overlay/abc123/4/work",
			}},
		}},
		{Type: mount.TypeTmpfs, Target: "/tmp", TmpfsOptions: &mount.TmpfsOptions{SizeBytes: 64 << 20, Mode: 0o1777}},
		{Type: mount.TypeTmpfs, Target: "/run"},
	}
	if !reflect.DeepEqual(got, want) {
		g, _ := json.MarshalIndent(got, "", " ")
		w, _ := json.MarshalIndent(want, "", " ")
		t.Fatalf("Docker() =\n%s\nwant\n%s", g, w)
	}
	if len(asked) != 1 || asked[0] != ms[4] {
		t.Errorf("overlay func asked for %+v, want only the overlay mount %+v", asked, ms[4])
	}

	// The wire form Docker receives: the mode is the raw bits, which the
	// daemon prints with %o as the kernel's mode=1777.
	b, err := json.Marshal(got[5])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"Mode":1023`) || !strings.Contains(string(b), `"SizeBytes":67108864`) {
		t.Errorf("tmpfs mount on the wire: %s", b)
	}

	// Each mount owns its labels: changing one changes neither the caller's
	// map nor another mount's.
	got[2].VolumeOptions.Labels["x"] = "y"
	if _, ok := labels["x"]; ok {
		t.Error("Docker() shares the caller's labels map")
	}
	if _, ok := got[3].VolumeOptions.Labels["x"]; ok {
		t.Error("Docker() shares one labels map between mounts")
	}
}

func TestDockerNoLabels(t *testing.T) {
	ms, err := ParseVolumes("vol:/v,/r:/o:overlay")
	if err != nil {
		t.Fatal(err)
	}
	got := Docker(ms, func(Mount) (string, string) { return "/u", "/w" }, nil)
	if got[0].VolumeOptions != nil {
		t.Errorf("named volume without labels has VolumeOptions %+v", got[0].VolumeOptions)
	}
	if vo := got[1].VolumeOptions; vo == nil || vo.Labels != nil || vo.DriverConfig == nil ||
		vo.DriverConfig.Options["o"] != "lowerdir=/r,upperdir=/u,workdir=/w" {
		t.Errorf("overlay without labels: %+v", vo)
	}
	if got := Docker(nil, nil, nil); len(got) != 0 {
		t.Errorf("Docker(nil) = %v", got)
	}
}

func TestDockerNilOverlayFuncPanics(t *testing.T) {
	ms, err := ParseVolumes("/a:/a,/r:/o:overlay")
	if err != nil {
		t.Fatal(err)
	}
	if got := Docker(ms[:1], nil, nil); len(got) != 1 {
		t.Fatalf("nil overlay func without overlay mounts: %v", got)
	}
	defer func() {
		r := recover()
		if r == nil || !strings.Contains(r.(string), `overlay mount /r:/o:overlay needs the func from Overlays.Prepare`) {
			t.Errorf("recovered %v", r)
		}
	}()
	Docker(ms, nil, nil)
}
