package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agentapi"
)

// testUID is the sandbox user of the files tests when they run as root, so
// that permissions are real: the agent is root, the user is not.
const testUID = 1000

// newFilesAgent serves an agent whose sandbox user is uid 1000 when the
// tests run as root (else the current user), with a workdir that user can
// reach.
func newFilesAgent(t *testing.T) *testAgent {
	t.Helper()
	base := sharedTempDir(t)
	return newTestAgent(t, func(o *Options) {
		o.Workdir = filepath.Join(base, "work")
		if os.Geteuid() == 0 {
			o.UserID = testUID
			o.SetupUser = func(context.Context, int) (Identity, error) {
				return Identity{UID: testUID, GID: testUID, Name: "tester", Home: base, Shell: "/bin/sh"}, nil
			}
		}
	})
}

// sharedTempDir is a temporary directory that other users can enter
// (t.TempDir's parents are private to the test's user).
func sharedTempDir(t testing.TB) string {
	t.Helper()
	return sharedTempDirIn(t, "")
}

// sharedTempDirIn is sharedTempDir in parent ("" = the default).
func sharedTempDirIn(t testing.TB, parent string) string {
	t.Helper()
	dir, err := os.MkdirTemp(parent, "berth-files-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// apiErr returns the *APIError in err, failing the test when there is none
// or when its status is not status.
func apiErr(t *testing.T, err error, status int, code string, mentions ...string) *agentapi.APIError {
	t.Helper()
	var ae *agentapi.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an *APIError with status %d", err, status)
	}
	if ae.Status != status || ae.Err.Code != code {
		t.Errorf("got %d %s (%q), want %d %s", ae.Status, ae.Err.Code, ae.Err.Message, status, code)
	}
	for _, m := range mentions {
		if !strings.Contains(ae.Err.Message, m) {
			t.Errorf("message %q does not mention %q", ae.Err.Message, m)
		}
	}
	return ae
}

func (a *testAgent) path(rel string) string { return filepath.Join(a.workdir, rel) }

// put writes a file as root, for setting up a test.
func put(t *testing.T, p, content string, mode fs.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func (a *testAgent) write(t *testing.T, p, content string, opts agentapi.WriteOptions) agentapi.FileInfo {
	t.Helper()
	info, err := a.client.WriteFile(t.Context(), p, strings.NewReader(content), opts)
	if err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	return info
}

func (a *testAgent) read(t *testing.T, p string, opts agentapi.ReadOptions) string {
	t.Helper()
	data, _, err := a.client.ReadFileBytes(t.Context(), p, opts)
	if err != nil {
		t.Fatalf("read %s %+v: %v", p, opts, err)
	}
	return string(data)
}

func owner(t *testing.T, p string) (uint32, uint32, fs.FileMode) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid, fi.Mode()
}

func TestFilesWriteReadStat(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	ctx := t.Context()

	info := a.write(t, "notes.txt", "hello\n", agentapi.WriteOptions{})
	want := a.path("notes.txt")
	if info.Path != want || info.Name != "notes.txt" || info.Size != 6 || info.Mode != "0644" || info.Type != agentapi.FileTypeFile || info.UID != a.user.UID || info.GID != a.user.GID {
		t.Errorf("write answered %+v", info)
	}
	if uid, gid, mode := owner(t, want); int(uid) != a.user.UID || int(gid) != a.user.GID || mode != 0o644 {
		t.Errorf("new file is %d:%d %v, want %d:%d 0644", uid, gid, mode, a.user.UID, a.user.GID)
	}

	rc, rinfo, err := a.client.ReadFile(ctx, "notes.txt", agentapi.ReadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != "hello\n" || rinfo.Path != want || rinfo.Size != 6 || rinfo.Mode != "0644" {
		t.Errorf("read %q %+v", data, rinfo)
	}
	// Absolute paths work the same.
	if got := a.read(t, want, agentapi.ReadOptions{}); got != "hello\n" {
		t.Errorf("absolute read = %q", got)
	}

	st, err := a.client.Stat(ctx, "notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	if st.Path != want || st.Size != 6 || st.IsDir || st.IsSymlink || st.ModTime.IsZero() || time.Since(st.ModTime) > time.Minute {
		t.Errorf("stat %+v", st)
	}
	if err := os.Symlink("notes.txt", a.path("link")); err != nil {
		t.Fatal(err)
	}
	ls, err := a.client.Stat(ctx, "link")
	if err != nil {
		t.Fatal(err)
	}
	if !ls.IsSymlink || ls.LinkTarget != "notes.txt" || ls.Type != agentapi.FileTypeSymlink {
		t.Errorf("stat of a symlink: %+v", ls)
	}
	lf, err := a.client.StatFollow(ctx, "link")
	if err != nil {
		t.Fatal(err)
	}
	if lf.IsSymlink || lf.Size != 6 || lf.Type != agentapi.FileTypeFile {
		t.Errorf("stat follow of a symlink: %+v", lf)
	}
	ds, err := a.client.Stat(ctx, ".")
	if err != nil {
		t.Fatal(err)
	}
	if !ds.IsDir || ds.Path != a.workdir || ds.Type != agentapi.FileTypeDir {
		t.Errorf("stat of the workdir: %+v", ds)
	}

	// Raw HTTP: the headers a curl user sees.
	status, h, body := rawGet(t, a, agentapi.PathFiles+"?path=notes.txt")
	if status != 200 || body != "hello\n" || h.Get("Content-Type") != agentapi.ContentTypeOctets ||
		h.Get(agentapi.HeaderFileSize) != "6" || h.Get(agentapi.HeaderFileMode) != "0644" || h.Get("Content-Length") != "6" {
		t.Errorf("raw read: %d %q %v", status, body, h)
	}
}

func rawGet(t *testing.T, a *testAgent, pathQuery string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, a.url+pathQuery, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(agentapi.HeaderKey, testKey)
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, string(b)
}

func TestFilesReadRanges(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	a.write(t, "lines.txt", "one\ntwo\nthree\nfour", agentapi.WriteOptions{}) // no newline at the end
	a.write(t, "nl.txt", "a\nb\n", agentapi.WriteOptions{})
	a.write(t, "empty.txt", "", agentapi.WriteOptions{})
	long := strings.Repeat("x", 200<<10) // longer than the line buffer
	a.write(t, "long.txt", "first\n"+long+"\nlast\n", agentapi.WriteOptions{})

	tests := []struct {
		file string
		opts agentapi.ReadOptions
		want string
	}{
		{"lines.txt", agentapi.ReadOptions{}, "one\ntwo\nthree\nfour"},
		{"lines.txt", agentapi.ReadOptions{Offset: 4}, "two\nthree\nfour"},
		{"lines.txt", agentapi.ReadOptions{Offset: 4, Length: 3}, "two"},
		{"lines.txt", agentapi.ReadOptions{Length: 2}, "on"},
		{"lines.txt", agentapi.ReadOptions{Offset: 16, Length: 100}, "ur"},
		{"lines.txt", agentapi.ReadOptions{Offset: 18}, ""},
		{"lines.txt", agentapi.ReadOptions{Offset: 1000, Length: 5}, ""},
		{"lines.txt", agentapi.ReadOptions{StartLine: 2, EndLine: 3}, "two\nthree\n"},
		{"lines.txt", agentapi.ReadOptions{StartLine: 1, EndLine: 1}, "one\n"},
		{"lines.txt", agentapi.ReadOptions{StartLine: 4}, "four"},
		{"lines.txt", agentapi.ReadOptions{StartLine: 3, EndLine: 99}, "three\nfour"},
		{"lines.txt", agentapi.ReadOptions{EndLine: 2}, "one\ntwo\n"},
		{"lines.txt", agentapi.ReadOptions{StartLine: 5}, ""},
		{"lines.txt", agentapi.ReadOptions{StartLine: 50, EndLine: 60}, ""},
		{"nl.txt", agentapi.ReadOptions{StartLine: 2}, "b\n"},
		{"nl.txt", agentapi.ReadOptions{StartLine: 3}, ""},
		{"empty.txt", agentapi.ReadOptions{StartLine: 1}, ""},
		{"empty.txt", agentapi.ReadOptions{Offset: 3}, ""},
		{"long.txt", agentapi.ReadOptions{StartLine: 2, EndLine: 2}, long + "\n"},
		{"long.txt", agentapi.ReadOptions{StartLine: 3}, "last\n"},
	}
	for _, tt := range tests {
		if got := a.read(t, tt.file, tt.opts); got != tt.want {
			if len(got) > 40 {
				got = got[:40] + "…"
			}
			t.Errorf("read %s %+v = %q, want %d bytes", tt.file, tt.opts, got, len(tt.want))
		}
	}

	bad := []struct{ query, mention string }{
		{"offset=-1", `"offset"`},
		{"length=x", `"length"`},
		{"start_line=0", `"start_line"`},
		{"start_line=3&end_line=2", `"end_line" 2 is before "start_line" 3`},
		{"offset=1&start_line=1", "not both"},
		{"offset=1&offset=2", `"offset" is given 2 times`},
		{"bogus=1", `unknown query parameter "bogus"`},
	}
	for _, b := range bad {
		status, _, body := rawGet(t, a, agentapi.PathFiles+"?path=lines.txt&"+b.query)
		if status != 400 || !strings.Contains(body, agentapi.CodeBadRequest) || !strings.Contains(body, strings.ReplaceAll(b.mention, `"`, `\"`)) {
			t.Errorf("%s: %d %s, want 400 mentioning %s", b.query, status, body, b.mention)
		}
	}
}

func TestFilesReadErrors(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	ctx := t.Context()
	_, _, err := a.client.ReadFile(ctx, "missing.txt", agentapi.ReadOptions{})
	apiErr(t, err, 404, agentapi.CodeNotFound, a.path("missing.txt"))

	if err := os.Mkdir(a.path("sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	_, _, err = a.client.ReadFile(ctx, "sub", agentapi.ReadOptions{})
	apiErr(t, err, 400, agentapi.CodeBadRequest, a.path("sub"), "is a directory")

	if err := syscall.Mkfifo(a.path("fifo"), 0o666); err != nil {
		t.Fatal(err)
	}
	_, _, err = a.client.ReadFile(ctx, "fifo", agentapi.ReadOptions{})
	apiErr(t, err, 400, agentapi.CodeBadRequest, "fifo")

	_, _, err = a.client.ReadFile(ctx, "", agentapi.ReadOptions{})
	apiErr(t, err, 400, agentapi.CodeBadRequest, `"path" is empty`)
	_, _, err = a.client.ReadFile(ctx, "a\x00b", agentapi.ReadOptions{})
	apiErr(t, err, 400, agentapi.CodeBadRequest, "NUL")
	_, err = a.client.Stat(ctx, "nope/deeper")
	apiErr(t, err, 404, agentapi.CodeNotFound, a.path("nope/deeper"))
}

// The agent is root; the sandbox user is not, and the API must not lend
// it root's powers.
func TestFilesPermissions(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	a := newFilesAgent(t)
	ctx := t.Context()
	secret := a.path("secret")
	put(t, secret, "root only", 0o600)
	_, _, err := a.client.ReadFile(ctx, "secret", agentapi.ReadOptions{})
	apiErr(t, err, 403, agentapi.CodeForbidden, secret, "permission denied", "uid 1000")
	_, err = a.client.WriteFile(ctx, "secret", strings.NewReader("x"), agentapi.WriteOptions{})
	apiErr(t, err, 403, agentapi.CodeForbidden, secret)
	_, err = a.client.WriteFile(ctx, "secret", strings.NewReader("x"), agentapi.WriteOptions{Append: true})
	apiErr(t, err, 403, agentapi.CodeForbidden, secret)
	if data, _ := os.ReadFile(secret); string(data) != "root only" {
		t.Errorf("secret changed to %q", data)
	}

	// A root-owned directory: nothing may be created or removed in it.
	locked := a.path("locked")
	if err := os.Mkdir(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(locked, "f"), "x", 0o666)
	_, err = a.client.WriteFile(ctx, "locked/new", strings.NewReader("x"), agentapi.WriteOptions{})
	apiErr(t, err, 403, agentapi.CodeForbidden, locked)
	_, err = a.client.Mkdir(ctx, "locked/d", 0)
	apiErr(t, err, 403, agentapi.CodeForbidden, filepath.Join(locked, "d"))
	apiErr(t, a.client.Remove(ctx, "locked/f", false), 403, agentapi.CodeForbidden, filepath.Join(locked, "f"))
	apiErr(t, a.client.Remove(ctx, "locked", true), 403, agentapi.CodeForbidden, locked)
	_, err = a.client.Move(ctx, "locked/f", "moved", false)
	apiErr(t, err, 403, agentapi.CodeForbidden)
	// A tar upload into it: the agent's answer comes back, even while the
	// local writer still has data to send.
	local := sharedTempDir(t)
	put(t, filepath.Join(local, "big/blob"), strings.Repeat("z", 1<<20), 0o644)
	_, err = a.client.CopyIn(ctx, filepath.Join(local, "big"), "locked/big")
	apiErr(t, err, 403, agentapi.CodeForbidden, locked)
	// A world-writable file in it can be rewritten in place... but not
	// atomically replaced: that needs a new file in the directory.
	_, err = a.client.WriteFile(ctx, "locked/f", strings.NewReader("y"), agentapi.WriteOptions{})
	apiErr(t, err, 403, agentapi.CodeForbidden, filepath.Join(locked, "f"), "atomic write", "append=1")
	_, err = a.client.WriteFile(ctx, "locked/f", strings.NewReader("y"), agentapi.WriteOptions{Append: true})
	if err != nil {
		t.Errorf("append to a 0666 file: %v", err)
	}

	// A directory the user cannot enter: no stat, no list.
	private := a.path("private")
	if err := os.Mkdir(private, 0o700); err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(private, "x"), "x", 0o644)
	_, err = a.client.Stat(ctx, "private/x")
	apiErr(t, err, 403, agentapi.CodeForbidden)
	_, err = a.client.List(ctx, "private", agentapi.ListOptions{})
	apiErr(t, err, 403, agentapi.CodeForbidden, private)
	// A recursive listing above it names it among its errors and goes on.
	res, err := a.client.List(ctx, "", agentapi.ListOptions{Recursive: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Errors) != 1 || !strings.Contains(res.Errors[0], private) {
		t.Errorf("recursive list errors = %q", res.Errors)
	}
	// Supplementary groups of the agent (root's) do not count.
	grp := a.path("group-only")
	put(t, grp, "g", 0o640)
	if err := os.Chown(grp, 0, 0); err != nil {
		t.Fatal(err)
	}
	_, _, err = a.client.ReadFile(ctx, "group-only", agentapi.ReadOptions{})
	apiErr(t, err, 403, agentapi.CodeForbidden)
}

// An existing file keeps its mode and its owner, even when the owner is
// not the sandbox user.
func TestFilesWriteKeepsModeAndOwner(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	p := a.path("script.sh")
	put(t, p, "old", 0o750)
	if err := os.Chown(p, a.user.UID, a.user.GID); err != nil {
		t.Fatal(err)
	}
	info := a.write(t, "script.sh", "#!/bin/sh\n", agentapi.WriteOptions{})
	if info.Mode != "0750" {
		t.Errorf("mode after write = %s, want 0750", info.Mode)
	}
	if _, _, mode := owner(t, p); mode != 0o750 {
		t.Errorf("mode on disk = %v", mode)
	}
	// An explicit mode wins.
	if info := a.write(t, "script.sh", "x", agentapi.WriteOptions{Mode: 0o700}); info.Mode != "0700" {
		t.Errorf("explicit mode: %s", info.Mode)
	}
	if info := a.write(t, "new.sh", "x", agentapi.WriteOptions{Mode: 0o755}); info.Mode != "0755" {
		t.Errorf("explicit mode of a new file: %s", info.Mode)
	}

	if os.Geteuid() != 0 {
		return
	}
	shared := a.path("shared.cfg")
	put(t, shared, "old", 0o666) // root's, writable by all
	if err := os.Chown(shared, 0, 42); err != nil {
		t.Fatal(err)
	}
	info = a.write(t, "shared.cfg", "new", agentapi.WriteOptions{})
	uid, gid, mode := owner(t, shared)
	if uid != 0 || gid != 42 || mode != 0o666 || info.UID != 0 || info.GID != 42 {
		t.Errorf("rewritten root file is %d:%d %v (answer %+v), want 0:42 0666", uid, gid, mode, info)
	}
	if data, _ := os.ReadFile(shared); string(data) != "new" {
		t.Errorf("content %q", data)
	}
	// ... but the user may not change the mode of root's file.
	_, err := a.client.WriteFile(t.Context(), "shared.cfg", strings.NewReader("x"), agentapi.WriteOptions{Mode: 0o777})
	apiErr(t, err, 403, agentapi.CodeForbidden, "cannot change the mode")
	// Setuid bits never come from the files API for a non-root user.
	put(t, a.path("suid"), "x", 0o4755)
	if err := os.Chown(a.path("suid"), 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(a.path("suid"), 0o4777); err != nil {
		t.Fatal(err)
	}
	info = a.write(t, "suid", "payload", agentapi.WriteOptions{})
	if _, _, mode := owner(t, a.path("suid")); mode&fs.ModeSetuid != 0 || info.Mode != "0777" {
		t.Errorf("setuid kept on a root file rewritten by the user: %v %s", mode, info.Mode)
	}
}

func TestFilesWriteOptions(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	ctx := t.Context()

	_, err := a.client.WriteFile(ctx, "a/b/c.txt", strings.NewReader("x"), agentapi.WriteOptions{})
	apiErr(t, err, 404, agentapi.CodeNotFound, a.path("a/b"), "mkdirs=1")
	info := a.write(t, "a/b/c.txt", "x", agentapi.WriteOptions{Mkdirs: true})
	if info.Path != a.path("a/b/c.txt") {
		t.Errorf("path %s", info.Path)
	}
	for _, d := range []string{"a", "a/b"} {
		if uid, _, mode := owner(t, a.path(d)); int(uid) != a.user.UID || mode != fs.ModeDir|0o755 {
			t.Errorf("made dir %s is uid %d %v", d, uid, mode)
		}
	}

	// Append: made if missing, then appended to.
	first := a.write(t, "log.txt", "one\n", agentapi.WriteOptions{Append: true})
	a.write(t, "log.txt", "two\n", agentapi.WriteOptions{Append: true})
	if got := a.read(t, "log.txt", agentapi.ReadOptions{}); got != "one\ntwo\n" || first.Mode != "0644" {
		t.Errorf("append: %q, %s", got, first.Mode)
	}
	resp := rawRequest(t, a, http.MethodPut, agentapi.PathFiles+"?path=log.txt&append=1", "three\n")
	if resp != 200 {
		t.Errorf("append to an existing file: status %d, want 200", resp)
	}
	if resp := rawRequest(t, a, http.MethodPut, agentapi.PathFiles+"?path=fresh.txt", "x"); resp != 201 {
		t.Errorf("new file: status %d, want 201", resp)
	}

	// A symlink is written through: the link stays, its target changes.
	a.write(t, "target.txt", "old", agentapi.WriteOptions{})
	if err := os.Symlink("target.txt", a.path("alias")); err != nil {
		t.Fatal(err)
	}
	a.write(t, "alias", "new", agentapi.WriteOptions{})
	if fi, err := os.Lstat(a.path("alias")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("the symlink was replaced: %v %v", fi, err)
	}
	if data, _ := os.ReadFile(a.path("target.txt")); string(data) != "new" {
		t.Errorf("target = %q", data)
	}

	_, err = a.client.WriteFile(ctx, "a", strings.NewReader("x"), agentapi.WriteOptions{})
	apiErr(t, err, 400, agentapi.CodeBadRequest, a.path("a"), "is a directory")
	_, err = a.client.WriteFile(ctx, "a", strings.NewReader("x"), agentapi.WriteOptions{Append: true})
	apiErr(t, err, 400, agentapi.CodeBadRequest, a.path("a"), "is a directory")
	_, err = a.client.WriteFile(ctx, "log.txt/x", strings.NewReader("x"), agentapi.WriteOptions{Mkdirs: true})
	apiErr(t, err, 409, agentapi.CodeConflict, a.path("log.txt"))
	if s := rawRequest(t, a, http.MethodPut, agentapi.PathFiles+"?path=x&mode=999", "x"); s != 400 {
		t.Errorf("bad mode: %d", s)
	}
	if s := rawRequest(t, a, http.MethodPut, agentapi.PathFiles+"?path=x&mkdirs=maybe", "x"); s != 400 {
		t.Errorf("bad flag: %d", s)
	}
	// No temporary file is left behind, whatever happened.
	ents, _ := os.ReadDir(a.workdir)
	for _, e := range ents {
		if strings.Contains(e.Name(), ".berth-") {
			t.Errorf("temporary file left: %s", e.Name())
		}
	}
}

func rawRequest(t *testing.T, a *testAgent, method, pathQuery, body string) int {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, a.url+pathQuery, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set(agentapi.HeaderKey, testKey)
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A reader never sees a part of a write: every read while a writer
// rewrites a 1 MiB file is all of the old content or all of the new.
func TestFilesAtomicWrite(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	const size = 1 << 20
	version := func(i int) []byte { return bytes.Repeat([]byte{byte('A' + i%26)}, size) }
	a.write(t, "big.bin", string(version(0)), agentapi.WriteOptions{})

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type report struct {
		reads int
		err   error
	}
	const readers = 3
	reports := make(chan report, readers)
	for range readers {
		go func() {
			var r report
			defer func() { reports <- r }()
			for ctx.Err() == nil {
				// Straight from the disk, and through the API.
				data, err := os.ReadFile(a.path("big.bin"))
				if err == nil && r.reads%2 == 1 {
					data, _, err = a.client.ReadFileBytes(ctx, "big.bin", agentapi.ReadOptions{})
				}
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					r.err = err
					return
				}
				if len(data) != size || !bytes.Equal(data, bytes.Repeat(data[:1], size)) {
					r.err = errors.New("saw a torn file")
					return
				}
				r.reads++
			}
		}()
	}
	for i := 1; i <= 50; i++ {
		a.write(t, "big.bin", string(version(i)), agentapi.WriteOptions{})
	}
	cancel()
	total := 0
	for range readers {
		r := <-reports
		if r.err != nil {
			t.Error(r.err)
		}
		total += r.reads
	}
	if total == 0 {
		t.Error("the readers read nothing")
	}
	t.Logf("%d whole reads during 50 rewrites", total)
	if got := a.read(t, "big.bin", agentapi.ReadOptions{Length: 1}); got != string(version(50)[:1]) {
		t.Errorf("last version %q", got)
	}
}

func TestFilesList(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	ctx := t.Context()
	for _, f := range []string{"b.go", "a.txt", "z/deep/x.go", "z/y.go", "m/n.txt", ".hidden/h.go", ".dot.go"} {
		a.write(t, f, "x", agentapi.WriteOptions{Mkdirs: true})
	}
	if _, err := a.client.Mkdir(ctx, "empty", 0); err != nil {
		t.Fatal(err)
	}
	names := func(res agentapi.ListResult) []string {
		var out []string
		for _, e := range res.Entries {
			rel, _ := filepath.Rel(a.workdir, e.Path)
			if e.IsDir {
				rel += "/"
			}
			out = append(out, rel)
		}
		return out
	}
	list := func(p string, o agentapi.ListOptions) agentapi.ListResult {
		t.Helper()
		res, err := a.client.List(ctx, p, o)
		if err != nil {
			t.Fatalf("list %s %+v: %v", p, o, err)
		}
		return res
	}
	tests := []struct {
		opts      agentapi.ListOptions
		want      string
		truncated bool
	}{
		{agentapi.ListOptions{}, ".hidden/ empty/ m/ z/ .dot.go a.txt b.go", false},
		{agentapi.ListOptions{NoHidden: true}, "empty/ m/ z/ a.txt b.go", false},
		{agentapi.ListOptions{Recursive: true, NoHidden: true}, "empty/ m/ z/ a.txt b.go m/n.txt z/deep/ z/y.go z/deep/x.go", false},
		{agentapi.ListOptions{Recursive: true, Glob: "*.go"}, ".dot.go b.go .hidden/h.go z/y.go z/deep/x.go", false},
		{agentapi.ListOptions{Recursive: true, Glob: "z/*"}, "z/deep/ z/y.go", false},
		{agentapi.ListOptions{Limit: 2}, ".hidden/ empty/", true},
		{agentapi.ListOptions{Recursive: true, Limit: 7}, ".hidden/ empty/ m/ z/ .dot.go a.txt b.go", true},
	}
	for _, tt := range tests {
		res := list("", tt.opts)
		if got := strings.Join(names(res), " "); got != tt.want || res.Truncated != tt.truncated {
			t.Errorf("list %+v = %q truncated=%v, want %q truncated=%v", tt.opts, got, res.Truncated, tt.want, tt.truncated)
		}
		if res.Path != a.workdir {
			t.Errorf("list path %s", res.Path)
		}
	}
	if res := list("empty", agentapi.ListOptions{}); res.Entries == nil || len(res.Entries) != 0 {
		t.Errorf("empty dir: %+v (entries must be [] in JSON)", res)
	}
	if res := list("z", agentapi.ListOptions{}); len(res.Entries) != 2 || res.Entries[1].Name != "y.go" || res.Entries[1].Size != 1 {
		t.Errorf("list z: %+v", res.Entries)
	}
	_, err := a.client.List(ctx, "a.txt", agentapi.ListOptions{})
	apiErr(t, err, 400, agentapi.CodeBadRequest, a.path("a.txt"), "not a directory")
	_, err = a.client.List(ctx, "nope", agentapi.ListOptions{})
	apiErr(t, err, 404, agentapi.CodeNotFound, a.path("nope"))
	_, err = a.client.List(ctx, "", agentapi.ListOptions{Glob: "[x"})
	apiErr(t, err, 400, agentapi.CodeBadRequest, `"glob"`)
	_, err = a.client.List(ctx, "", agentapi.ListOptions{Limit: agentapi.MaxListLimit + 1})
	apiErr(t, err, 400, agentapi.CodeBadRequest, `"limit"`)
}

func TestFilesMkdir(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	ctx := t.Context()
	info, err := a.client.Mkdir(ctx, "x/y/z", 0o750)
	if err != nil {
		t.Fatal(err)
	}
	if !info.IsDir || info.Mode != "0750" || info.Path != a.path("x/y/z") || info.UID != a.user.UID {
		t.Errorf("mkdir answered %+v", info)
	}
	if _, _, mode := owner(t, a.path("x/y")); mode != fs.ModeDir|0o755 {
		t.Errorf("parent mode %v, want 0755", mode)
	}
	if s := rawRequest(t, a, http.MethodPost, agentapi.PathFilesMkdir, `{"path":"x/y/z"}`); s != 200 {
		t.Errorf("mkdir of an existing dir: %d, want 200", s)
	}
	if s := rawRequest(t, a, http.MethodPost, agentapi.PathFilesMkdir, `{"path":"new"}`); s != 201 {
		t.Errorf("mkdir of a new dir: %d, want 201", s)
	}
	a.write(t, "file", "x", agentapi.WriteOptions{})
	_, err = a.client.Mkdir(ctx, "file", 0)
	apiErr(t, err, 409, agentapi.CodeConflict, a.path("file"), "not a directory")
	_, err = a.client.Mkdir(ctx, "file/sub", 0)
	apiErr(t, err, 409, agentapi.CodeConflict, a.path("file"))
	_, err = a.client.Mkdir(ctx, "", 0)
	apiErr(t, err, 400, agentapi.CodeBadRequest, `"path" is empty`)
	if s := rawRequest(t, a, http.MethodPost, agentapi.PathFilesMkdir, `{"path":"m","mode":"rwx"}`); s != 400 {
		t.Errorf("bad mode: %d", s)
	}
	if s := rawRequest(t, a, http.MethodPost, agentapi.PathFilesMkdir, `{"path":"m","parents":true}`); s != 400 {
		t.Errorf("unknown field: %d", s)
	}
}

func TestFilesMove(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	ctx := t.Context()
	a.write(t, "a.txt", "A", agentapi.WriteOptions{})
	a.write(t, "b.txt", "B", agentapi.WriteOptions{})
	a.write(t, "dir/inner.txt", "I", agentapi.WriteOptions{Mkdirs: true})

	info, err := a.client.Move(ctx, "a.txt", "c.txt", false)
	if err != nil || info.Path != a.path("c.txt") || info.Size != 1 {
		t.Fatalf("move: %+v %v", info, err)
	}
	_, err = a.client.Move(ctx, "c.txt", "b.txt", false)
	apiErr(t, err, 409, agentapi.CodeConflict, a.path("b.txt"), "overwrite")
	if _, err := a.client.Move(ctx, "c.txt", "b.txt", true); err != nil {
		t.Fatal(err)
	}
	if got := a.read(t, "b.txt", agentapi.ReadOptions{}); got != "A" {
		t.Errorf("b.txt = %q", got)
	}
	_, err = a.client.Move(ctx, "missing", "x", false)
	apiErr(t, err, 404, agentapi.CodeNotFound, a.path("missing"))
	_, err = a.client.Move(ctx, "b.txt", "no/such/dir/b", false)
	apiErr(t, err, 404, agentapi.CodeNotFound, a.path("no/such/dir/b"))
	_, err = a.client.Move(ctx, "dir", "dir/sub", false)
	apiErr(t, err, 400, agentapi.CodeBadRequest, "into itself")
	a.write(t, "full/x", "x", agentapi.WriteOptions{Mkdirs: true})
	_, err = a.client.Move(ctx, "dir", "full", true)
	apiErr(t, err, 409, agentapi.CodeConflict, "not empty")
	_, err = a.client.Move(ctx, "b.txt", "full", true)
	apiErr(t, err, 409, agentapi.CodeConflict, "is a directory")
	if _, err := a.client.Mkdir(ctx, "emptydir", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := a.client.Move(ctx, "dir", "emptydir", true); err != nil {
		t.Errorf("move a dir over an empty one: %v", err)
	}
	if got := a.read(t, "emptydir/inner.txt", agentapi.ReadOptions{}); got != "I" {
		t.Errorf("moved dir content %q", got)
	}
	if _, err := a.client.Move(ctx, "b.txt", "b.txt", false); err != nil {
		t.Errorf("move onto itself: %v", err)
	}
	_, err = a.client.Move(ctx, "", "x", false)
	apiErr(t, err, 400, agentapi.CodeBadRequest, `"from" is empty`)
}

func TestFilesRemove(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	ctx := t.Context()
	a.write(t, "f", "x", agentapi.WriteOptions{})
	a.write(t, "d/e/f", "x", agentapi.WriteOptions{Mkdirs: true})
	if err := os.Symlink("/etc", a.path("etc-link")); err != nil {
		t.Fatal(err)
	}
	if err := a.client.Remove(ctx, "f", false); err != nil {
		t.Fatal(err)
	}
	apiErr(t, a.client.Remove(ctx, "f", false), 404, agentapi.CodeNotFound, a.path("f"))
	apiErr(t, a.client.Remove(ctx, "d", false), 409, agentapi.CodeConflict, a.path("d"), "recursive=1")
	if err := a.client.Remove(ctx, "d", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(a.path("d")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("d is still there: %v", err)
	}
	// A symlink goes, never what it points to.
	if err := a.client.Remove(ctx, "etc-link", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat("/etc/passwd"); err != nil {
		t.Errorf("/etc suffered: %v", err)
	}
	apiErr(t, a.client.Remove(ctx, "/", true), 400, agentapi.CodeBadRequest, "root")
	apiErr(t, a.client.Remove(ctx, "/../", true), 400, agentapi.CodeBadRequest, "root")
	if s := rawRequest(t, a, http.MethodDelete, agentapi.PathFiles+"?path="+url.QueryEscape(a.path("x")), ""); s != 404 {
		t.Errorf("remove missing: %d", s)
	}
}

func TestFilesMethodsAndAuth(t *testing.T) {
	t.Parallel()
	a := newFilesAgent(t)
	for _, tt := range []struct {
		method, path string
		status       int
	}{
		{http.MethodPost, agentapi.PathFiles, 405},
		{http.MethodGet, agentapi.PathFilesMkdir, 405},
		{http.MethodDelete, agentapi.PathFilesTar, 405},
	} {
		if s := rawRequest(t, a, tt.method, tt.path, ""); s != tt.status {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, s, tt.status)
		}
	}
	status, _, _ := call(t, http.MethodGet, a.url+agentapi.PathFiles+"?path=x", "", "")
	if status != 401 {
		t.Errorf("read without key: %d", status)
	}
}

// The user's identity stays on the threads of asUser: every other
// goroutine, on whatever thread, keeps the agent's own.
func TestAsUserDoesNotLeak(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	a := newFilesAgent(t)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	leaks := make(chan int, 4)
	for range 4 {
		go func() {
			seen := 0
			defer func() { leaks <- seen }()
			for ctx.Err() == nil {
				if uid, _ := unix.SetfsuidRetUid(-1); uid != 0 {
					seen++
				}
				if gid, _ := unix.SetfsgidRetGid(-1); gid != 0 {
					seen++
				}
				runtime.Gosched()
			}
		}()
	}
	done := make(chan error, 8)
	for range 8 {
		go func() {
			var err error
			for i := 0; i < 50 && err == nil; i++ {
				err = a.srv.asUser(func() error {
					if uid, _ := unix.SetfsuidRetUid(-1); uid != testUID {
						return errors.New("asUser ran without the user's fsuid")
					}
					_, err := os.Stat(a.workdir)
					return err
				})
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	cancel()
	for range 4 {
		if n := <-leaks; n > 0 {
			t.Errorf("another goroutine saw the user's identity %d times", n)
		}
	}
	// A panic in fn reaches the caller's goroutine.
	defer func() {
		if v := recover(); v != "boom" {
			t.Errorf("recovered %v, want the panic of fn", v)
		}
	}()
	_ = a.srv.asUser(func() error { panic("boom") })
}
