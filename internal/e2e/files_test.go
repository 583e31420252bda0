package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/dockertest"
)

// rootSh runs a shell line in the container as root, with docker exec
// (the agent never runs anything as root for the API), and returns its
// output.
func (b *box) rootSh(t *testing.T, line string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := env.Client
	ex, err := c.ExecCreate(ctx, b.ContainerID, client.ExecCreateOptions{
		User: "root", Cmd: []string{"/bin/sh", "-c", line}, AttachStdout: true, AttachStderr: true,
	})
	if err != nil {
		t.Fatalf("docker exec %q: %v", line, err)
	}
	att, err := c.ExecAttach(ctx, ex.ID, client.ExecAttachOptions{})
	if err != nil {
		t.Fatalf("docker exec %q: attach: %v", line, err)
	}
	defer att.Close()
	var out bytes.Buffer
	if _, err := io.Copy(&out, att.Reader); err != nil {
		t.Fatalf("docker exec %q: read: %v", line, err)
	}
	ins, err := c.ExecInspect(ctx, ex.ID, client.ExecInspectOptions{})
	if err != nil || ins.ExitCode != 0 {
		t.Fatalf("docker exec %q: exit %d, %v: %q", line, ins.ExitCode, err, out.String())
	}
	return out.String()
}

func TestFilesAsSandboxUser(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	info, err := b.agent.WriteFile(ctx, "notes/today.md", strings.NewReader("# hi\n"), agentapi.WriteOptions{Mkdirs: true})
	if err != nil {
		t.Fatal(err)
	}
	if info.Path != "/workspace/notes/today.md" || info.UID != 1000 || info.GID != 1000 || info.Mode != "0644" {
		t.Errorf("write answered %+v", info)
	}
	if out, _ := b.sh(t, "stat -c '%u:%g %a' /workspace/notes /workspace/notes/today.md; cat /workspace/notes/today.md"); out != "1000:1000 755\n1000:1000 644\n# hi\n" {
		t.Errorf("in the container: %q", out)
	}
	data, _, err := b.agent.ReadFileBytes(ctx, "/workspace/notes/today.md", agentapi.ReadOptions{})
	if err != nil || string(data) != "# hi\n" {
		t.Errorf("read back %q, %v", data, err)
	}

	// Root's private file: the API acts as the user, so 403.
	b.rootSh(t, "printf secret > /workspace/root-only && chmod 600 /workspace/root-only && chown 0:0 /workspace/root-only")
	_, _, err = b.agent.ReadFile(ctx, "root-only", agentapi.ReadOptions{})
	wantStatus(t, err, 403, "/workspace/root-only")
	_, err = b.agent.WriteFile(ctx, "/etc/berth-test", strings.NewReader("x"), agentapi.WriteOptions{})
	wantStatus(t, err, 403, "/etc/berth-test")
	wantStatus(t, b.agent.Remove(ctx, "/etc/hostname", false), 403, "/etc/hostname")
	_, err = b.agent.List(ctx, "/root", agentapi.ListOptions{})
	wantStatus(t, err, 403, "/root")
	_, _, err = b.agent.ReadFile(ctx, "nope", agentapi.ReadOptions{})
	wantStatus(t, err, 404, "/workspace/nope")

	// Rewriting root's world-writable file keeps root as its owner.
	b.rootSh(t, "printf old > /workspace/shared && chmod 666 /workspace/shared")
	if _, err := b.agent.WriteFile(ctx, "shared", strings.NewReader("new"), agentapi.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	if out, _ := b.sh(t, "stat -c '%u:%g %a' /workspace/shared; cat /workspace/shared"); out != "0:0 666\nnew" {
		t.Errorf("rewritten root file: %q", out)
	}
}

func wantStatus(t *testing.T, err error, status int, mention string) {
	t.Helper()
	var ae *agentapi.APIError
	if !errors.As(err, &ae) || ae.Status != status || !strings.Contains(ae.Err.Message, mention) {
		t.Errorf("got %v, want status %d mentioning %q", err, status, mention)
	}
}

// treeTar streams a tar of files files of size bytes (each a pattern of
// its index) in 10 directories, without holding it in memory.
func treeTar(files, size int) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		chunk := make([]byte, 64<<10)
		for i := range files {
			h := &tar.Header{Name: fmt.Sprintf("big/d%d/f%03d.bin", i%10, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}
			if err := tw.WriteHeader(h); err != nil {
				pw.CloseWithError(err)
				return
			}
			for j := range chunk {
				chunk[j] = byte(i + j/251)
			}
			for left := size; left > 0; left -= len(chunk) {
				if _, err := tw.Write(chunk[:min(left, len(chunk))]); err != nil {
					pw.CloseWithError(err)
					return
				}
			}
		}
		pw.CloseWithError(tw.Close())
	}()
	return pr
}

// agentStatus reads fields of /proc/<agent>/status in the container.
func (b *box) agentStatus(t *testing.T, fields ...string) map[string]int64 {
	t.Helper()
	out, code := b.sh(t, `for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = berth-agent ] && cat $p/status; done`)
	if code != 0 {
		t.Fatalf("agent status: %q", out)
	}
	got := map[string]int64{}
	for line := range strings.SplitSeq(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		for _, f := range fields {
			if k == f {
				n, _ := strconv.ParseInt(strings.Fields(v)[0], 10, 64)
				got[f] = n << 10 // kB
			}
		}
	}
	return got
}

// A 100 MB tree goes up as a stream: the agent's memory stays small.
func TestFilesTarUploadStreams(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const files, size = 100, 1 << 20

	// Reset the agent's peak RSS (VmHWM), so what follows is the upload's.
	b.rootSh(t, `for p in /proc/[0-9]*; do [ "$(cat $p/comm 2>/dev/null)" = berth-agent ] && echo 5 > $p/clear_refs; done; true`)
	before := b.agentStatus(t, "VmRSS", "VmHWM")

	start := time.Now()
	res, err := b.agent.UploadTar(ctx, "/workspace", treeTar(files, size))
	if err != nil {
		t.Fatal(err)
	}
	up := time.Since(start)
	after := b.agentStatus(t, "VmRSS", "VmHWM")
	if res.Files != files || res.Bytes != files*size {
		t.Errorf("upload result %+v", res)
	}
	mb := float64(files*size) / 1e6
	t.Logf("upload of %.0f MB in %d files: %v, %.0f MB/s; agent RSS %d MiB before, %d MiB after, peak during upload %d MiB",
		mb, files, up.Round(time.Millisecond), mb/up.Seconds(), before["VmRSS"]>>20, after["VmRSS"]>>20, after["VmHWM"]>>20)
	if after["VmHWM"] > 64<<20 {
		t.Errorf("agent peak RSS %d MiB during a %.0f MB upload: it is not streaming", after["VmHWM"]>>20, mb)
	}
	// Content and owner, checked in the container.
	if out, _ := b.sh(t, `find /workspace/big -type f | wc -l; stat -c '%u:%g %a %s' /workspace/big/d7/f057.bin; find /workspace/big ! -user 1000 | wc -l`); out != "100\n1000:1000 644 1048576\n0\n" {
		t.Errorf("in the container: %q", out)
	}

	// The same into the container's tmpfs (64 MB at most), to tell the
	// agent's throughput from the storage driver's.
	start = time.Now()
	if _, err := b.agent.UploadTar(ctx, "/dev/shm/up", treeTar(48, size)); err != nil {
		t.Fatal(err)
	}
	shm := time.Since(start)
	t.Logf("upload of %.0f MB in 48 files into tmpfs (/dev/shm): %v, %.0f MB/s", 48*size/1e6, shm.Round(time.Millisecond), 48*size/1e6/shm.Seconds())

	// And down again.
	start = time.Now()
	rc, err := b.agent.DownloadTar(ctx, "/workspace/big")
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(rc)
	var n int64
	var entries int
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries++
		if h.Name == "big/d7/f057.bin" {
			buf := make([]byte, 300)
			if _, err := io.ReadFull(tr, buf); err != nil || buf[0] != 57 || buf[299] != byte(57+1) {
				t.Errorf("f057 content %v… %v", buf[:4], err)
			}
		}
		m, _ := io.Copy(io.Discard, tr)
		n += m
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Errorf("end of download: %v", err)
	}
	rc.Close()
	down := time.Since(start)
	if entries != files+11 {
		t.Errorf("download has %d entries, want %d", entries, files+11)
	}
	t.Logf("download of %.0f MB: %v, %.0f MB/s", mb, down.Round(time.Millisecond), mb/down.Seconds())
}

// berth cp's functions, both ways, against the real agent.
func TestFilesCopyInOutInContainer(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	local := t.TempDir()
	write := func(rel, content string, mode os.FileMode) {
		p := filepath.Join(local, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), mode); err != nil {
			t.Fatal(err)
		}
		os.Chmod(p, mode)
	}
	write("proj/main.go", "package main\n", 0o644)
	write("proj/scripts/run.sh", "#!/bin/sh\necho run\n", 0o755)
	write("proj/données/été.txt", "unicode\n", 0o600)
	if err := os.Symlink("scripts/run.sh", filepath.Join(local, "proj/run")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(local, "proj/empty"), 0o700); err != nil {
		t.Fatal(err)
	}

	if _, err := b.agent.CopyIn(ctx, filepath.Join(local, "proj"), "/workspace"); err != nil {
		t.Fatal(err)
	}
	out, _ := b.sh(t, `cd /workspace/proj && find . | sort && stat -c '%U %a %n' scripts/run.sh empty données/été.txt && ./run`)
	want := ".\n./données\n./données/été.txt\n./empty\n./main.go\n./run\n./scripts\n./scripts/run.sh\n" +
		"berth 755 scripts/run.sh\nberth 700 empty\nberth 600 données/été.txt\nrun\n"
	if out != want {
		t.Errorf("in the container:\n%s\nwant:\n%s", out, want)
	}

	back := filepath.Join(local, "back")
	if _, err := b.agent.CopyOut(ctx, "/workspace/proj", back); err != nil {
		t.Fatal(err)
	}
	for rel, want := range map[string]string{"main.go": "package main\n", "données/été.txt": "unicode\n", "run": "#!/bin/sh\necho run\n"} {
		if data, err := os.ReadFile(filepath.Join(back, rel)); err != nil || string(data) != want {
			t.Errorf("back/%s = %q, %v", rel, data, err)
		}
	}
	if fi, err := os.Stat(filepath.Join(back, "scripts/run.sh")); err != nil || fi.Mode().Perm() != 0o755 {
		t.Errorf("run.sh came back as %v, %v", fi, err)
	}
	// A single file out, as a new name.
	if _, err := b.agent.CopyOut(ctx, "/workspace/proj/main.go", filepath.Join(local, "main-copy.go")); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(filepath.Join(local, "main-copy.go")); string(data) != "package main\n" {
		t.Errorf("main-copy.go = %q", data)
	}
	// Root's private file cannot be copied out.
	b.rootSh(t, "printf s > /workspace/proj/secret && chmod 600 /workspace/proj/secret")
	_, err := b.agent.CopyOut(ctx, "/workspace/proj", filepath.Join(local, "again"))
	var probs *agentapi.TarProblems
	if !errors.As(err, &probs) || !strings.Contains(probs.Error(), "/workspace/proj/secret") {
		t.Errorf("copy out with an unreadable file: %v", err)
	}
}
