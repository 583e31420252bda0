package agent

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// makeTree builds, through the API where it can (so the user owns it), a
// tree with nested and empty directories, modes, symlinks, a hard link,
// unicode and long names, and a read-only directory with content.
func makeTree(t *testing.T, a *testAgent, root string) {
	t.Helper()
	ctx := t.Context()
	rnd := rand.New(rand.NewPCG(1, 2))
	bin := make([]byte, 300<<10)
	for i := range bin {
		bin[i] = byte(rnd.Uint32())
	}
	long := strings.Repeat("long-name-", 12) // > 100 bytes: needs PAX
	files := []struct {
		name    string
		content string
		mode    fs.FileMode
	}{
		{"a.txt", "alpha\n", 0o644},
		{"run.sh", "#!/bin/sh\necho hi\n", 0o755},
		{"private.key", "k", 0o600},
		{"nested/deep/er/file.bin", string(bin), 0o644},
		{"ünïcode ✓/naïve 文件.txt", "unicode\n", 0o640},
		{long + "/" + long + ".txt", "long\n", 0o644},
		{"ro/inside.txt", "in a read-only dir\n", 0o444},
		{"empty.txt", "", 0o644},
	}
	for _, f := range files {
		if _, err := a.client.WriteFile(ctx, filepath.Join(root, f.name), strings.NewReader(f.content), agentapi.WriteOptions{Mode: f.mode, Mkdirs: true}); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{"empty", "nested/empty-too"} {
		if _, err := a.client.Mkdir(ctx, filepath.Join(root, d), 0o750); err != nil {
			t.Fatal(err)
		}
	}
	abs := a.path(root)
	for _, l := range [][2]string{{"a.txt", "link"}, {"nested", "dirlink"}, {"does-not-exist", "dangling"}, {"../a.txt", "nested/up"}} {
		if err := os.Symlink(l[0], filepath.Join(abs, l[1])); err != nil {
			t.Fatal(err)
		}
		_ = os.Lchown(filepath.Join(abs, l[1]), a.user.UID, a.user.GID)
	}
	if err := os.Link(filepath.Join(abs, "a.txt"), filepath.Join(abs, "hard")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(abs, "ro"), 0o555); err != nil {
		t.Fatal(err)
	}
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := os.Chtimes(filepath.Join(abs, "a.txt"), old, old); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes every path below root: type, mode, size, content
// hash (for files) or target (for links).
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			desc += " " + string(rune(len(data))) + " " + shortHash(data)
			if rel == "a.txt" {
				desc += " " + fi.ModTime().UTC().Format(time.RFC3339)
			}
		}
		out[rel] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func shortHash(b []byte) string {
	var h uint64 = 14695981039346656037
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return string(rune(h%0x10FFFF + 1))
}

func TestFilesTarRoundTrip(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	ctx := t.Context()
	makeTree(t, a, "src")

	rc, err := a.client.DownloadTar(ctx, "src")
	if err != nil {
		t.Fatal(err)
	}
	var archive bytes.Buffer
	if _, err := io.Copy(&archive, rc); err != nil {
		t.Fatalf("download: %v", err)
	}
	rc.Close()
	names := tarNames(t, archive.Bytes())
	if names[0] != "src/" {
		t.Errorf("first entry %q, want src/", names[0])
	}
	for _, n := range names {
		if n != "src/" && !strings.HasPrefix(n, "src/") {
			t.Errorf("entry %q is not below src/", n)
		}
	}

	res, err := a.client.UploadTar(ctx, "dst", bytes.NewReader(archive.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if res.Path != a.path("dst") || res.Files != 8 || res.Symlinks != 4 || res.HardLinks != 1 || res.Dirs != 9 {
		t.Errorf("upload result %+v", res)
	}
	want, got := snapshot(t, a.path("src")), snapshot(t, a.path("dst/src"))
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: got %q, want %q", k, got[k], v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("extra entry %s", k)
		}
	}
	// Everything extracted belongs to the sandbox user.
	filepath.WalkDir(a.path("dst"), func(p string, d fs.DirEntry, err error) error {
		if uid, gid, _ := owner(t, p); int(uid) != a.user.UID || int(gid) != a.user.GID {
			t.Errorf("%s is %d:%d", p, uid, gid)
		}
		return nil
	})
	// The hard link is one.
	fa, _ := os.Stat(a.path("dst/src/a.txt"))
	fh, _ := os.Stat(a.path("dst/src/hard"))
	if !os.SameFile(fa, fh) {
		t.Error("hard link became a copy")
	}

	// Gzip, detected by its magic, with or without Content-Encoding.
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(archive.Bytes())
	zw.Close()
	if _, err := a.client.UploadTar(ctx, "gz", bytes.NewReader(gz.Bytes())); err != nil {
		t.Fatal(err)
	}
	if got := snapshot(t, a.path("gz/src")); len(got) != len(want) {
		t.Errorf("gzip upload: %d entries, want %d", len(got), len(want))
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, a.url+agentapi.PathFilesTar+"?path=gz2", bytes.NewReader(gz.Bytes()))
	req.Header.Set(agentapi.HeaderKey, testKey)
	req.Header.Set("Content-Encoding", "gzip")
	if resp, err := a.hc.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("gzip with Content-Encoding: %v %v", resp, err)
	} else {
		resp.Body.Close()
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodPut, a.url+agentapi.PathFilesTar+"?path=gz3", bytes.NewReader(gz.Bytes()))
	req.Header.Set(agentapi.HeaderKey, testKey)
	req.Header.Set("Content-Encoding", "br")
	if resp, err := a.hc.Do(req); err != nil || resp.StatusCode != 415 {
		t.Errorf("brotli: %v %v, want 415", resp, err)
	} else {
		resp.Body.Close()
	}
}

func tarNames(t *testing.T, archive []byte) []string {
	t.Helper()
	var names []string
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
}

// A single file downloads as a tar of exactly that file (OpenHands gave an
// empty zip).
func TestFilesTarSingleFile(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	a.write(t, "dir/report.txt", "the report\n", agentapi.WriteOptions{Mkdirs: true, Mode: 0o640})
	rc, err := a.client.DownloadTar(t.Context(), "dir/report.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	h, err := tr.Next()
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(tr)
	if h.Name != "report.txt" || h.Typeflag != tar.TypeReg || h.Mode != 0o640 || string(data) != "the report\n" {
		t.Errorf("entry %+v %q", h, data)
	}
	if h, err := tr.Next(); !errors.Is(err, io.EOF) {
		t.Errorf("a second entry: %+v %v", h, err)
	}
	if _, err := io.Copy(io.Discard, rc); err != nil {
		t.Errorf("end of stream: %v", err)
	}

	status, hdr, _ := rawGet(t, a, agentapi.PathFilesTar+"?path=dir/report.txt")
	if status != 200 || hdr.Get("Content-Type") != agentapi.ContentTypeTar || hdr.Get(agentapi.HeaderFileStat) == "" {
		t.Errorf("raw download: %d %v", status, hdr)
	}
	_, err = a.client.DownloadTar(t.Context(), "nope")
	apiErr(t, err, 404, agentapi.CodeNotFound, a.path("nope"))
	if err := syscall.Mkfifo(a.path("fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = a.client.DownloadTar(t.Context(), "fifo")
	apiErr(t, err, 400, agentapi.CodeBadRequest, "fifo")
}

// Unreadable entries are left out, and the client hears of it at the end.
func TestFilesTarDownloadProblems(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	a := newFilesAgent(t)
	a.write(t, "d/ok.txt", "ok", agentapi.WriteOptions{Mkdirs: true})
	put(t, a.path("d/secret"), "no", 0o600)
	rc, err := a.client.DownloadTar(t.Context(), "d")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	var probs *agentapi.TarProblems
	if !errors.As(err, &probs) || probs.Count != 1 || !strings.Contains(probs.Problems[0], a.path("d/secret")) || !strings.Contains(probs.Problems[0], "permission denied") {
		t.Fatalf("end of download: %v", err)
	}
	if names := tarNames(t, data); !slices.Equal(names, []string{"d/", "d/ok.txt"}) {
		t.Errorf("entries %q", names)
	}
	// The root itself unreadable: a 403 before any byte.
	_, err = a.client.DownloadTar(t.Context(), "d/secret")
	apiErr(t, err, 403, agentapi.CodeForbidden, a.path("d/secret"))
}

type tarEntry struct {
	name, link string
	typ        byte
	body       string
}

func mkTar(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Format: tar.FormatPAX}
		if e.typ == tar.TypeDir {
			h.Mode = 0o755
		}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func file(name, body string) tarEntry { return tarEntry{name: name, typ: tar.TypeReg, body: body} }
func dir(name string) tarEntry        { return tarEntry{name: name, typ: tar.TypeDir} }
func symlink(name, target string) tarEntry {
	return tarEntry{name: name, link: target, typ: tar.TypeSymlink}
}
func hardlink(name, target string) tarEntry {
	return tarEntry{name: name, link: target, typ: tar.TypeLink}
}

// Hostile archives (zip-slip and friends) are refused, and nothing is
// ever written outside the target directory.
func TestFilesTarZipSlip(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	ctx := t.Context()
	outside := a.path("outside")
	put(t, filepath.Join(outside, "secret"), "keep", 0o666)
	if err := os.Chmod(outside, 0o777); err != nil { // writable by the user: only the extractor stands in the way
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		setup   func(target string)
		archive []byte
		status  int
		mention string
	}{
		{"absolute name", nil, mkTar(t, file("/tmp/evil", "x")), 400, "absolute"},
		{"dot-dot", nil, mkTar(t, file("../outside/evil", "x")), 400, `".."`},
		{"dot-dot inside a name", nil, mkTar(t, file("a/../../outside/evil", "x")), 400, `".."`},
		{"symlink up and out", nil, mkTar(t, symlink("l", "../outside"), file("l/evil", "x")), 400, "outside"},
		{"absolute symlink", nil, mkTar(t, symlink("l", "/etc")), 400, "outside"},
		{"absolute symlink to the outside dir", nil, mkTar(t, symlink("l", outside)), 400, "outside"},
		{"deep symlink up and out", nil, mkTar(t, dir("a/"), dir("a/b/"), symlink("a/b/l", "../../../outside/secret")), 400, "outside"},
		{"chain: a -> ., l -> a/..", nil, mkTar(t, symlink("a", "."), symlink("l", "a/.."), file("l/evil", "x")), 400, "resolves outside"},
		{"chain through a dir link", nil, mkTar(t, dir("d/"), symlink("d/up", ".."), symlink("esc", "d/up/..")), 400, "resolves outside"},
		{"hard link out", nil, mkTar(t, hardlink("h", "../outside/secret")), 400, `".."`},
		{"hard link to an absolute path", nil, mkTar(t, hardlink("h", outside+"/secret")), 400, "absolute"},
		{"existing symlink on the way", func(target string) {
			os.Symlink("../outside", filepath.Join(target, "pre"))
		}, mkTar(t, file("pre/evil", "x")), 409, "pre"},
		{"existing symlink replaced, not followed", func(target string) {
			os.Symlink("../outside/secret", filepath.Join(target, "pre2"))
		}, mkTar(t, file("pre2", "replaced")), 200, ""},
		{"not a tar", nil, []byte(strings.Repeat("garbage", 200)), 400, "tar"},
		{"truncated tar", nil, mkTar(t, file("f", strings.Repeat("x", 4096)))[:1500], 400, ""},
		{"a file over an existing dir", func(target string) {
			os.Mkdir(filepath.Join(target, "d"), 0o755)
		}, mkTar(t, file("d", "x")), 409, "is a directory"},
		{"a dir over an existing file", func(target string) {
			os.WriteFile(filepath.Join(target, "f"), nil, 0o644)
		}, mkTar(t, dir("f/")), 409, "not a directory"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := a.path("up/" + string(rune('a'+i)))
			if _, err := a.client.Mkdir(ctx, target, 0); err != nil {
				t.Fatal(err)
			}
			if tt.setup != nil {
				tt.setup(target)
			}
			before := snapshot(t, a.workdir)
			_, err := a.client.UploadTar(ctx, target, bytes.NewReader(tt.archive))
			if tt.status == 200 {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				code := agentapi.CodeBadRequest
				if tt.status == 409 {
					code = agentapi.CodeConflict
				}
				apiErr(t, err, tt.status, code, tt.mention)
			}
			after := snapshot(t, a.workdir)
			targetRel, _ := filepath.Rel(a.workdir, target)
			for k, v := range after {
				if k != targetRel && !strings.HasPrefix(k, targetRel+"/") && before[k] != v {
					t.Errorf("written outside the target: %s (%s, was %q)", k, v, before[k])
				}
			}
			for k := range before {
				if _, ok := after[k]; !ok && !strings.HasPrefix(k, targetRel+"/") {
					t.Errorf("removed outside the target: %s", k)
				}
			}
			// No symlink left below the target resolves outside it.
			filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
				if d != nil && d.Type()&fs.ModeSymlink != 0 {
					if real, err := filepath.EvalSymlinks(p); err == nil && !strings.HasPrefix(real, target+"/") && real != target {
						t.Errorf("symlink %s resolves to %s, outside", p, real)
					}
				}
				return nil
			})
		})
	}
	if data, _ := os.ReadFile(filepath.Join(outside, "secret")); string(data) != "keep" {
		t.Errorf("outside/secret = %q", data)
	}
	if ents, _ := os.ReadDir(outside); len(ents) != 1 {
		t.Errorf("outside has %d entries", len(ents))
	}
}

// Extraction keeps the archive's modes, sets directory modes last, and
// gives everything to the sandbox user whatever the header says.
func TestFilesTarUploadModesAndOwner(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
	for _, h := range []*tar.Header{
		{Name: "ro/", Typeflag: tar.TypeDir, Mode: 0o555, Uid: 0, Gid: 0, ModTime: mtime},
		{Name: "ro/x", Typeflag: tar.TypeReg, Mode: 0o751, Uid: 0, Gid: 0, Size: 1, ModTime: mtime},
		{Name: "implicit/parent/f", Typeflag: tar.TypeReg, Mode: 0o600, Size: 1},
		{Name: "fifo", Typeflag: tar.TypeFifo, Mode: 0o644},
	} {
		tw.WriteHeader(h)
		if h.Size > 0 {
			tw.Write([]byte("x"))
		}
	}
	tw.Close()
	res, err := a.client.UploadTar(t.Context(), "new/dir", &buf)
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != 2 || res.Skipped != 1 {
		t.Errorf("result %+v", res)
	}
	root := a.path("new/dir")
	for _, c := range []struct {
		rel  string
		mode fs.FileMode
	}{{"ro", fs.ModeDir | 0o555}, {"ro/x", 0o751}, {"implicit", fs.ModeDir | 0o755}, {"implicit/parent/f", 0o600}} {
		uid, gid, mode := owner(t, filepath.Join(root, c.rel))
		if mode != c.mode || int(uid) != a.user.UID || int(gid) != a.user.GID {
			t.Errorf("%s: %v %d:%d, want %v %d:%d", c.rel, mode, uid, gid, c.mode, a.user.UID, a.user.GID)
		}
	}
	if fi, _ := os.Stat(filepath.Join(root, "ro")); !fi.ModTime().Equal(mtime) {
		t.Errorf("dir mtime %v, want %v", fi.ModTime(), mtime)
	}
	if _, err := os.Lstat(filepath.Join(root, "fifo")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("fifo extracted: %v", err)
	}
	// Upload into a file: 409.
	a.write(t, "plain", "x", agentapi.WriteOptions{})
	_, err = a.client.UploadTar(t.Context(), "plain", bytes.NewReader(mkTar(t, file("f", "x"))))
	apiErr(t, err, 409, agentapi.CodeConflict, a.path("plain"))
}

// CopyIn and CopyOut follow docker cp's rules on both sides.
func TestFilesCopyInOut(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	ctx := t.Context()
	local := sharedTempDir(t)
	put(t, filepath.Join(local, "proj/main.go"), "package main\n", 0o644)
	put(t, filepath.Join(local, "proj/bin/tool"), "#!/bin/sh\n", 0o755)
	if err := os.Symlink("main.go", filepath.Join(local, "proj/alias.go")); err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(local, "one.txt"), "one\n", 0o600)

	// A dir into an existing dir: below it, under its own name.
	if _, err := a.client.CopyIn(ctx, filepath.Join(local, "proj"), "."); err != nil {
		t.Fatal(err)
	}
	// A dir to a new path: copied as that path.
	if _, err := a.client.CopyIn(ctx, filepath.Join(local, "proj"), "renamed"); err != nil {
		t.Fatal(err)
	}
	// Content only.
	if _, err := a.client.Mkdir(ctx, "flat", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.CopyIn(ctx, filepath.Join(local, "proj")+"/.", "flat"); err != nil {
		t.Fatal(err)
	}
	// A file onto a new name, then over an existing file.
	if _, err := a.client.CopyIn(ctx, filepath.Join(local, "one.txt"), "uno.txt"); err != nil {
		t.Fatal(err)
	}
	a.write(t, "existing.txt", "old", agentapi.WriteOptions{})
	if _, err := a.client.CopyIn(ctx, filepath.Join(local, "one.txt"), "existing.txt"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"proj/main.go": "package main\n", "renamed/bin/tool": "#!/bin/sh\n", "flat/main.go": "package main\n",
		"uno.txt": "one\n", "existing.txt": "one\n",
	} {
		if got := a.read(t, p, agentapi.ReadOptions{}); got != want {
			t.Errorf("%s = %q, want %q", p, got, want)
		}
	}
	if _, _, mode := owner(t, a.path("renamed/bin/tool")); mode != 0o755 {
		t.Errorf("tool mode %v", mode)
	}
	if target, err := os.Readlink(a.path("proj/alias.go")); err != nil || target != "main.go" {
		t.Errorf("symlink: %q %v", target, err)
	}
	if _, err := a.client.CopyIn(ctx, filepath.Join(local, "proj"), "uno.txt"); err == nil {
		t.Error("a dir onto a file was accepted")
	}
	if _, err := a.client.CopyIn(ctx, filepath.Join(local, "one.txt"), "no/such/dir/x"); err == nil {
		t.Error("a missing parent was accepted")
	}

	// And back out.
	out := filepath.Join(local, "out")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.CopyOut(ctx, "renamed", out); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.CopyOut(ctx, "renamed", filepath.Join(out, "again")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.CopyOut(ctx, "uno.txt", filepath.Join(out, "single.txt")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.CopyOut(ctx, "flat/.", filepath.Join(out, "again")); err != nil { // content into an existing dir
		t.Fatal(err)
	}
	for p, want := range map[string]string{
		"renamed/main.go": "package main\n", "again/bin/tool": "#!/bin/sh\n", "single.txt": "one\n", "again/alias.go": "package main\n",
	} {
		if data, err := os.ReadFile(filepath.Join(out, p)); err != nil || string(data) != want {
			t.Errorf("local %s = %q, %v", p, data, err)
		}
	}
	if _, _, mode := owner(t, filepath.Join(out, "single.txt")); mode != 0o600 {
		t.Errorf("single.txt mode %v", mode)
	}
	if _, err := a.client.CopyOut(ctx, "missing", out); !isStatus(err, 404) {
		t.Errorf("copy out of a missing path: %v", err)
	}
}

func isStatus(err error, status int) bool {
	var ae *agentapi.APIError
	return errors.As(err, &ae) && ae.Status == status
}
