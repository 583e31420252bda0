package docker

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/sandbox"
)

func TestVolumes(t *testing.T) {
	h := newHarness(t, nil)
	host := t.TempDir()
	ro, ov := filepath.Join(host, "ro"), filepath.Join(host, "ov")
	for _, d := range []string{ro, ov} {
		if err := os.MkdirAll(d, 0o777); err != nil {
			t.Fatal(err)
		}
		os.Chmod(d, 0o777) // writable by the sandbox user through the overlay
		if err := os.WriteFile(filepath.Join(d, "orig"), []byte("host\n"), 0o666); err != nil {
			t.Fatal(err)
		}
		os.Chmod(filepath.Join(d, "orig"), 0o666)
	}
	vol := "berth-test-vol-" + env.RunID
	s := spec(t)
	s.Volumes = []string{ro + ":/mnt/ro:ro", ov + ":/mnt/ov:overlay", vol + ":/mnt/vol"}
	s.Tmpfs = []string{"/mnt/tmp:size=8m"}
	sb := h.create(t, s)

	// bind ro refuses writes; the host's file is visible.
	if out, code := sh(t, h, sb, "cat /mnt/ro/orig; echo x > /mnt/ro/new"); code == 0 || !strings.HasPrefix(out, "host\n") {
		t.Errorf("ro bind: %q exit %d", out, code)
	}
	// overlay: reads the host dir, writes stay in the sandbox.
	if out, code := sh(t, h, sb, "cat /mnt/ov/orig && echo changed > /mnt/ov/orig && echo new > /mnt/ov/new && rm /mnt/ov/orig && echo done"); code != 0 || out != "host\ndone\n" {
		t.Errorf("overlay writes: %q exit %d", out, code)
	}
	if b, err := os.ReadFile(filepath.Join(ov, "orig")); err != nil || string(b) != "host\n" {
		t.Errorf("the host's file under the overlay: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(ov, "new")); !os.IsNotExist(err) {
		t.Errorf("a file written through the overlay reached the host dir: %v", err)
	}
	// tmpfs with its size.
	if out, _ := sh(t, h, sb, "df -k /mnt/tmp | tail -1 | awk '{print $2}'"); strings.TrimSpace(out) != "8192" {
		t.Errorf("tmpfs size: %q KiB", out)
	}
	// The named volume was created and labelled; write to it.
	if out, code := sh(t, h, sb, "echo kept > /mnt/vol/f && echo kept > /mnt/tmp/f"); code != 0 {
		t.Errorf("named volume write: %q", out)
	}
	v, err := env.Client.VolumeInspect(context.Background(), vol, client.VolumeInspectOptions{})
	if err != nil || v.Volume.Labels[sandbox.LabelID] != sb.ID {
		t.Errorf("named volume: %+v %v", v.Volume.Labels, err)
	}

	overlayDir := filepath.Join(h.rt.opts.StateDir, "overlay", sb.ID)
	if _, err := os.Stat(overlayDir); err != nil {
		t.Errorf("overlay dir while running: %v", err)
	}
	if err := h.rt.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(overlayDir); !os.IsNotExist(err) {
		t.Errorf("overlay dir %s left after rm: %v", overlayDir, err)
	}
	// The named volume outlives the sandbox and serves the next one.
	s2 := spec(t)
	s2.Volumes = []string{vol + ":/data"}
	sb2 := h.create(t, s2)
	if out, _ := sh(t, h, sb2, "cat /data/f"); out != "kept\n" {
		t.Errorf("named volume in a second sandbox: %q", out)
	}
}

func TestBadVolumesChangeNothing(t *testing.T) {
	h := newHarness(t, nil)
	s := spec(t)
	s.Volumes = []string{"/a:relative", "/b:/c:rx"}
	s.Tmpfs = []string{"tmp"}
	before := env.Containers(t)
	_, err := h.rt.Create(context.Background(), s)
	if !errors.Is(err, sandbox.ErrInvalidSpec) {
		t.Fatalf("Create() = %v, want ErrInvalidSpec", err)
	}
	for _, w := range []string{`"/a:relative"`, `"/b:/c:rx"`, `"tmp"`} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error does not quote %s: %v", w, err)
		}
	}
	h.assertNothingLeft(t, before)
}
