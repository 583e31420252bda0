package agent

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/berth-dev/berth/internal/agentapi"
)

// newBenchAgent serves an in-process agent for benchmarks: as for the
// files tests, the sandbox user is uid 1000 when running as root, so the
// cost of acting as the user is measured too.
func newBenchAgent(b *testing.B, fsDir string) (*agentapi.Client, string) {
	b.Helper()
	base := sharedTempDirIn(b, fsDir)
	opts := Options{
		Key:     testKey,
		UserID:  os.Getuid(),
		Workdir: filepath.Join(base, "work"),
		Logger:  slog.New(slog.DiscardHandler),
		Environ: []string{"PATH=" + os.Getenv("PATH")},
		SetupUser: func(context.Context, int) (Identity, error) {
			return Identity{UID: os.Getuid(), GID: os.Getgid(), Name: "bench", Home: base, Shell: "/bin/sh"}, nil
		},
	}
	if os.Geteuid() == 0 {
		opts.UserID = testUID
		opts.SetupUser = func(context.Context, int) (Identity, error) {
			return Identity{UID: testUID, GID: testUID, Name: "bench", Home: base, Shell: "/bin/sh"}, nil
		}
	}
	s, err := NewServer(b.Context(), opts)
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	b.Cleanup(ts.Close)
	b.Cleanup(s.Close)
	return agentapi.New(ts.URL, testKey, ts.Client()), s.opts.Workdir
}

// benchFS runs a benchmark on the disk (the default temporary directory)
// and on tmpfs (/dev/shm), when there is one: the difference is the cost
// of the disk (creates, fsync), the rest is the agent's.
func benchFS(b *testing.B, run func(b *testing.B, fsDir string)) {
	b.Run("disk", func(b *testing.B) { run(b, "") })
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		b.Run("tmpfs", func(b *testing.B) { run(b, "/dev/shm") })
	}
}

// A 1 MiB file written (atomically, fsync included) and read back through
// the API. Target: ≤ 10 ms per round trip.
func BenchmarkFilesWriteRead1MiB(b *testing.B) { benchFS(b, benchWriteRead) }

func benchWriteRead(b *testing.B, fsDir string) {
	c, _ := newBenchAgent(b, fsDir)
	ctx := b.Context()
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	buf := make([]byte, len(data))
	b.SetBytes(int64(2 * len(data)))
	for b.Loop() {
		if _, err := c.WriteFile(ctx, "bench.bin", bytes.NewReader(data), agentapi.WriteOptions{}); err != nil {
			b.Fatal(err)
		}
		rc, _, err := c.ReadFile(ctx, "bench.bin", agentapi.ReadOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(rc, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}

// benchTree is a tar of files files of size bytes each, in 8 directories.
func benchTree(b *testing.B, files, size int) []byte {
	b.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	content := bytes.Repeat([]byte{'x'}, size)
	for i := range files {
		h := &tar.Header{Name: fmt.Sprintf("tree/d%d/f%04d", i%8, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(size)}
		if err := tw.WriteHeader(h); err != nil {
			b.Fatal(err)
		}
		tw.Write(content)
	}
	tw.Close()
	return buf.Bytes()
}

// Tar upload throughput: a 64 MiB tree of 1 MiB files (and one of 4 KiB
// files) streamed and extracted. Target: ≥ 150 MB/s.
func BenchmarkFilesTarUpload(b *testing.B) {
	for _, c := range []struct {
		name        string
		files, size int
	}{{"64x1MiB", 64, 1 << 20}, {"4096x4KiB", 4096, 4 << 10}} {
		b.Run(c.name, func(b *testing.B) {
			benchFS(b, func(b *testing.B, fsDir string) {
				client, workdir := newBenchAgent(b, fsDir)
				ctx := b.Context()
				archive := benchTree(b, c.files, c.size)
				b.SetBytes(int64(c.files * c.size))
				i := 0
				for b.Loop() {
					i++
					dir := fmt.Sprintf("up%d", i)
					if _, err := client.UploadTar(ctx, dir, bytes.NewReader(archive)); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					os.RemoveAll(filepath.Join(workdir, dir))
					b.StartTimer()
				}
			})
		})
	}
}

// Tar download throughput of the same 64 MiB tree.
func BenchmarkFilesTarDownload(b *testing.B) { benchFS(b, benchTarDownload) }

func benchTarDownload(b *testing.B, fsDir string) {
	client, _ := newBenchAgent(b, fsDir)
	ctx := b.Context()
	if _, err := client.UploadTar(ctx, "src", bytes.NewReader(benchTree(b, 64, 1<<20))); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(64 << 20)
	for b.Loop() {
		rc, err := client.DownloadTar(ctx, "src/tree")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, rc); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
