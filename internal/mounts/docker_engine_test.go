package mounts

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/dockertest"
	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// engine connects to the Docker engine, or skips the test without one
// (fails under REQUIRE_DOCKER=1). It does not use dockertest.Main, which
// builds berth-agent first: these tests need no agent, and the unit tests of
// this package should not wait for, or depend on, that build.
func engine(t *testing.T) (*client.Client, *dockertest.Env) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.New(client.FromEnv)
	if err == nil {
		if _, err = c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			c.Close()
		}
	}
	if err != nil {
		if os.Getenv("REQUIRE_DOCKER") == "1" {
			t.Fatalf("REQUIRE_DOCKER=1 but no Docker engine: %v", err)
		}
		t.Skipf("no Docker engine: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	env := &dockertest.Env{Client: c, RunID: hex.EncodeToString(b)}
	env.RequireImage(t, dockertest.BusyboxImage)
	return c, env
}

// TestEngineMounts runs a container with one mount of each kind on the real
// engine, as a non-root user, and checks what the kernel made of them:
// writes through the overlay land in the upper dir and never in the host
// dir, the read-only bind refuses writes, the named volume is created with
// berth's labels, the tmpfs has its size and mode, and Remove cleans up.
func TestEngineMounts(t *testing.T) {
	c, env := engine(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	lower, roDir := t.TempDir(), t.TempDir()
	write := func(p, s string, mode os.FileMode) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(lower, "f"), "host\n", 0o666)
	write(filepath.Join(lower, "gone"), "host\n", 0o644)
	write(filepath.Join(roDir, "r"), "ro\n", 0o644)
	volName := "berth-mounts-test-" + env.RunID
	id := "mt" + env.RunID

	ms, err := ParseVolumes(lower + ":/ovl:overlay, " + roDir + ":/ro:ro, " + volName + ":/vol")
	if err != nil {
		t.Fatal(err)
	}
	tm, err := ParseTmpfs("/scratch:size=8m,mode=1777")
	if err != nil {
		t.Fatal(err)
	}
	ms = append(ms, tm)
	ov := Overlays{Root: filepath.Join(t.TempDir(), "overlay")}
	paths, err := ov.Prepare(id, ms, 1000, 1000)
	if err != nil {
		t.Fatal(err)
	}
	labels := env.Labels()
	labels["berth.id"] = id

	script := strings.Join([]string{
		"set -e",
		"cat /ovl/f",
		"echo changed > /ovl/f",
		"echo new > /ovl/new",
		"rm /ovl/gone",
		"mkdir /ovl/d && echo deep > /ovl/d/x",
		"if touch /ro/x 2>/dev/null; then echo RO-WRITABLE; fi",
		"cat /ro/r",
		"test -d /vol",
		"echo mode=$(stat -c %a /scratch)",
		"echo kb=$(df -k /scratch | awk 'NR==2{print $2}')",
		"echo scratch > /scratch/x",
	}, "\n")
	res, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{
			Image:  dockertest.BusyboxImage,
			Cmd:    []string{"sh", "-c", script},
			User:   "1000:1000",
			Labels: labels,
		},
		HostConfig: &container.HostConfig{Mounts: Docker(ms, paths, labels)},
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if _, err := c.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil && !cerrdefs.IsNotFound(err) {
			t.Errorf("remove container: %v", err)
		}
		if _, err := c.VolumeRemove(ctx, volName, client.VolumeRemoveOptions{Force: true}); err != nil {
			t.Errorf("remove volume: %v", err)
		}
		if err := ov.Remove(id); err != nil {
			t.Errorf("remove overlay dirs: %v", err)
		}
	})
	if _, err := c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatalf("start: %v", err)
	}
	wait := c.ContainerWait(ctx, res.ID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	var code int64
	select {
	case r := <-wait.Result:
		code = r.StatusCode
	case err := <-wait.Error:
		t.Fatalf("wait: %v", err)
	}
	logs, err := c.ContainerLogs(ctx, res.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	_, _ = stdcopy.StdCopy(&out, &out, logs)
	logs.Close()
	if code != 0 {
		t.Fatalf("script exited %d:\n%s", code, out.String())
	}
	for _, want := range []string{"host\n", "ro\n", "mode=1777\n", "kb=8192\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "RO-WRITABLE") {
		t.Error("the read-only bind mount took a write")
	}

	// The host dir is exactly as it was.
	entries, err := os.ReadDir(lower)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "f,gone" {
		t.Errorf("lower dir now holds %v, want [f gone]", names)
	}
	if b, _ := os.ReadFile(filepath.Join(lower, "f")); string(b) != "host\n" {
		t.Errorf("lower f = %q: a write reached the host dir", b)
	}
	if _, err := os.Stat(filepath.Join(roDir, "x")); err == nil {
		t.Error("a file appeared in the read-only host dir")
	}

	// The writes are in the upper dir, owned by the sandbox user.
	upper, _ := paths(ms[0])
	for name, want := range map[string]string{"f": "changed\n", "new": "new\n", "d/x": "deep\n"} {
		b, err := os.ReadFile(filepath.Join(upper, name))
		if err != nil || string(b) != want {
			t.Errorf("upper %s = %q, %v; want %q", name, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(upper, "new")); err == nil {
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1000 {
			t.Errorf("upper/new owned by uid %d, want 1000", st.Uid)
		}
	}
	if fi, err := os.Lstat(filepath.Join(upper, "gone")); err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		t.Errorf("upper/gone should be the kernel's whiteout (a char device): %v, %v", fi, err)
	}

	// Docker made the named volume with berth's labels, and labelled the
	// overlay's anonymous volume too.
	vi, err := c.VolumeInspect(ctx, volName, client.VolumeInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if vi.Volume.Labels["berth.id"] != id || vi.Volume.Labels[dockertest.Label] != env.RunID {
		t.Errorf("named volume labels %v", vi.Volume.Labels)
	}
	vols, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", "berth.id="+id)})
	if err != nil {
		t.Fatal(err)
	}
	var anon int
	for _, v := range vols.Items {
		if v.Name != volName {
			anon++
			if v.Options["type"] != "overlay" || !strings.Contains(v.Options["o"], "lowerdir="+lower+",") {
				t.Errorf("overlay volume %s options %v", v.Name, v.Options)
			}
		}
	}
	if anon != 1 {
		t.Errorf("found %d labelled anonymous overlay volumes, want 1", anon)
	}

	// Removing the container with its volumes removes the overlay volume;
	// Remove then deletes the dirs (the kernel's work/work included).
	if _, err := c.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true}); err != nil {
		t.Fatal(err)
	}
	vols, err = c.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", "berth.id="+id)})
	if err != nil {
		t.Fatal(err)
	}
	if len(vols.Items) != 1 || vols.Items[0].Name != volName {
		t.Errorf("after removing the container, labelled volumes are %v, want only the named one", vols.Items)
	}
	if err := ov.Remove(id); err != nil {
		t.Fatal(err)
	}
	if left, _ := ov.Orphans(); len(left) != 0 {
		t.Errorf("overlay dirs left: %v", left)
	}
}
