package mounts

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

// lowers makes n host dirs to use as overlay lower dirs, and returns them.
func lowers(t *testing.T, n int) []string {
	t.Helper()
	base := t.TempDir()
	var ds []string
	for i := range n {
		d := filepath.Join(base, "lower"+string(rune('a'+i)))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, d)
	}
	return ds
}

func mustParse(t *testing.T, spec string) []Mount {
	t.Helper()
	ms, err := ParseVolumes(spec)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

func TestOverlaysPrepare(t *testing.T) {
	lo := lowers(t, 2)
	root := filepath.Join(t.TempDir(), "state", "overlay") // parents made as needed
	o := Overlays{Root: root}
	ms := mustParse(t, "/etc:/e:ro,"+lo[0]+":/w:overlay,vol:/v,"+lo[1]+":/x:overlay")

	paths, err := o.Prepare("abc123", ms, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	for _, idx := range []string{"1", "3"} {
		for _, sub := range []string{"upper", "work"} {
			d := filepath.Join(root, "abc123", idx, sub)
			fi, err := os.Stat(d)
			if err != nil {
				t.Fatalf("%s: %v", d, err)
			}
			if !fi.IsDir() || fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: mode %v, want a 0755 dir", d, fi.Mode())
			}
		}
	}
	if fi, err := os.Stat(filepath.Join(root, "abc123")); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("sandbox dir: %v %v, want 0700", fi.Mode(), err)
	}
	for _, idx := range []string{"0", "2"} {
		if _, err := os.Stat(filepath.Join(root, "abc123", idx)); !os.IsNotExist(err) {
			t.Errorf("dir for non-overlay mount %s: %v", idx, err)
		}
	}
	up, wk := paths(ms[3])
	if up != filepath.Join(root, "abc123", "3", "upper") || wk != filepath.Join(root, "abc123", "3", "work") {
		t.Errorf("paths(overlay 3) = %q, %q", up, wk)
	}
	if up, wk := paths(ms[0]); up != "" || wk != "" {
		t.Errorf("paths(bind) = %q, %q, want empty", up, wk)
	}
	// the Docker mount uses them
	dm := Docker(ms, paths, nil)
	if o := dm[3].VolumeOptions.DriverConfig.Options["o"]; o != "lowerdir="+lo[1]+",upperdir="+up+",workdir="+wk {
		t.Errorf("overlay options %q", o)
	}

	// Prepare again keeps what the upper dir holds (a restarted sandbox's changes).
	if err := os.WriteFile(filepath.Join(up, "kept"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := o.Prepare("abc123", ms, -1, -1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(up, "kept")); err != nil {
		t.Errorf("second Prepare lost the upper dir's content: %v", err)
	}
	// the lower dirs were not touched
	for _, l := range lo {
		if entries, _ := os.ReadDir(l); len(entries) != 0 {
			t.Errorf("lower dir %s got %v", l, entries)
		}
	}
}

func TestOverlaysPrepareNoOverlay(t *testing.T) {
	root := filepath.Join(t.TempDir(), "overlay")
	paths, err := Overlays{Root: root}.Prepare("abc", mustParse(t, "/a:/a,v1:/v"), -1, -1)
	if err != nil || paths == nil {
		t.Fatalf("Prepare = (nil func? %v), %v", paths == nil, err)
	}
	if _, err := os.Stat(root); !os.IsNotExist(err) {
		t.Errorf("Prepare without overlay mounts made %s: %v", root, err)
	}
	// no root needed when there is nothing to prepare
	if _, err := (Overlays{}).Prepare("abc", nil, -1, -1); err != nil {
		t.Errorf("Prepare(no mounts) with no root: %v", err)
	}
}

func TestOverlaysPrepareChown(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown to another user needs root")
	}
	lo := lowers(t, 1)
	root := t.TempDir()
	ms := mustParse(t, lo[0]+":/w:overlay")
	paths, err := Overlays{Root: root}.Prepare("s1", ms, 1234, 5678)
	if err != nil {
		t.Fatal(err)
	}
	up, _ := paths(ms[0])
	fi, err := os.Stat(up)
	if err != nil {
		t.Fatal(err)
	}
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 1234 || st.Gid != 5678 {
		t.Errorf("%s owned by %d:%d, want 1234:5678", up, st.Uid, st.Gid)
	}
	// The upper dir (the merged view's root) takes the lower dir's mode.
	lfi, _ := os.Stat(lo[0])
	if fi.Mode().Perm() != lfi.Mode().Perm() {
		t.Errorf("upper mode %v, lower %v", fi.Mode().Perm(), lfi.Mode().Perm())
	}
	// -1 takes the lower dir's id
	ms2 := mustParse(t, lo[0]+":/w:overlay")
	paths, err = Overlays{Root: root}.Prepare("s2", ms2, 42, -1)
	if err != nil {
		t.Fatal(err)
	}
	up, _ = paths(ms2[0])
	fi, _ = os.Stat(up)
	lst := lfi.Sys().(*syscall.Stat_t)
	if st := fi.Sys().(*syscall.Stat_t); st.Uid != 42 || st.Gid != lst.Gid {
		t.Errorf("upper owned by %d:%d, want 42:%d", st.Uid, st.Gid, lst.Gid)
	}
}

func TestOverlaysPrepareRefuses(t *testing.T) {
	lo := lowers(t, 1)
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	home := t.TempDir()
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(home, link); err != nil {
		t.Fatal(err)
	}
	good := lo[0] + ":/w:overlay"
	cases := []struct {
		name, root, id, spec, want string
	}{
		{"bad id", t.TempDir(), "../x", good, `sandbox id "../x" is not [a-z0-9]+`},
		{"upper-case id", t.TempDir(), "ABC", good, `sandbox id "ABC" is not [a-z0-9]+`},
		{"empty id", t.TempDir(), "", good, "sandbox id is empty"},
		{"no root", "", "abc", good, "overlay root dir is not set"},
		{"root is /", "/", "abc", good, `overlay root dir "/" is the filesystem root`},
		{"comma in root", filepath.Join(t.TempDir(), "a,b"), "abc", good, `contains ",", ":" or "\"`},
		{"missing lower", t.TempDir(), "abc", "/nonexistent/berth/lower:/w:overlay", `overlay "/nonexistent/berth/lower:/w:overlay": lower dir: stat /nonexistent/berth/lower: no such file or directory`},
		{"lower is a file", t.TempDir(), "abc", file + ":/w:overlay", "is not a directory"},
		{"root inside lower", filepath.Join(home, ".local", "state", "berth", "overlay"), "abc", home + ":/w:overlay", "overlap (one is inside the other)"},
		{"root inside lower through a symlink", filepath.Join(link, "state"), "abc", home + ":/w:overlay", "overlap"},
		{"lower inside the overlay dirs", home, "abc", filepath.Join(home, "abc") + ":/w:overlay", "overlap"},
		{"lower is /", t.TempDir(), "abc", "/:/w:overlay", "overlap"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "lower inside the overlay dirs" {
				if err := os.MkdirAll(filepath.Join(home, "abc"), 0o755); err != nil {
					t.Fatal(err)
				}
				defer os.RemoveAll(filepath.Join(home, "abc"))
			}
			_, err := Overlays{Root: c.root}.Prepare(c.id, mustParse(t, c.spec), -1, -1)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Prepare = %v, want an error containing %q", err, c.want)
			}
			if c.id != "" && !strings.Contains(err.Error(), c.id) && !strings.Contains(err.Error(), quote(c.id)) {
				t.Errorf("error does not name the sandbox: %v", err)
			}
		})
	}
	// nothing was written into the host dir
	if entries, _ := os.ReadDir(home); len(entries) != 0 {
		t.Errorf("refused Prepare wrote into the lower dir: %v", entries)
	}
}

func TestOverlaysPrepareCleansUpOnError(t *testing.T) {
	lo := lowers(t, 1)
	root := t.TempDir()
	// the first overlay is fine, the second has a missing lower dir
	ms := mustParse(t, lo[0]+":/w:overlay,/nonexistent/berth:/x:overlay")
	if _, err := (Overlays{Root: root}).Prepare("abc", ms, -1, -1); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(filepath.Join(root, "abc")); !os.IsNotExist(err) {
		t.Errorf("failed Prepare left %s: %v", filepath.Join(root, "abc"), err)
	}

	// a sandbox dir that existed before is kept, with its content
	keep := filepath.Join(root, "old", "0", "upper", "f")
	if err := os.MkdirAll(filepath.Dir(keep), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keep, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := (Overlays{Root: root}).Prepare("old", ms, -1, -1); err == nil {
		t.Fatal("no error")
	}
	if _, err := os.Stat(keep); err != nil {
		t.Errorf("failed Prepare removed an earlier sandbox's data: %v", err)
	}
}

func TestOverlaysRemoveAndOrphans(t *testing.T) {
	lo := lowers(t, 1)
	root := filepath.Join(t.TempDir(), "overlay")
	o := Overlays{Root: root}

	ids, err := o.Orphans()
	if err != nil || ids != nil {
		t.Fatalf("Orphans() of a missing root = %v, %v", ids, err)
	}
	ms := mustParse(t, lo[0]+":/w:overlay")
	for _, id := range []string{"bbb", "aaa", "c0ffee"} {
		if _, err := o.Prepare(id, ms, -1, -1); err != nil {
			t.Fatal(err)
		}
	}
	// entries that are not sandbox dirs are ignored
	if err := os.WriteFile(filepath.Join(root, "afile"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "Not-An-Id"), 0o755); err != nil {
		t.Fatal(err)
	}
	ids, err = o.Orphans()
	if err != nil || !reflect.DeepEqual(ids, []string{"aaa", "bbb", "c0ffee"}) {
		t.Fatalf("Orphans() = %v, %v", ids, err)
	}

	// a file as deep as the kernel leaves it: work/work with mode 0
	ww := filepath.Join(root, "bbb", "0", "work", "work")
	if err := os.Mkdir(ww, 0); err != nil {
		t.Fatal(err)
	}
	if err := o.Remove("bbb"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "bbb")); !os.IsNotExist(err) {
		t.Errorf("Remove left %s: %v", filepath.Join(root, "bbb"), err)
	}
	if err := o.Remove("bbb"); err != nil {
		t.Errorf("second Remove: %v", err)
	}
	if err := o.Remove("neverexisted"); err != nil {
		t.Errorf("Remove of an unknown id: %v", err)
	}
	ids, _ = o.Orphans()
	if !reflect.DeepEqual(ids, []string{"aaa", "c0ffee"}) {
		t.Errorf("Orphans() after Remove = %v", ids)
	}
	if _, err := os.Stat(lo[0]); err != nil {
		t.Errorf("Remove touched the lower dir: %v", err)
	}

	for _, bad := range []string{"", "..", ".", "../overlay", "a/b", "/etc", "ABC", "a-b", "afile "} {
		err := o.Remove(bad)
		if err == nil || !strings.Contains(err.Error(), "sandbox id") {
			t.Errorf("Remove(%q) = %v, want a refusal", bad, err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, "afile")); err != nil {
		t.Errorf("a refused Remove deleted something: %v", err)
	}
	if err := (Overlays{}).Remove("abc"); err == nil || !strings.Contains(err.Error(), "overlay root dir is not set") {
		t.Errorf("Remove with no root = %v", err)
	}
	if _, err := (Overlays{}).Orphans(); err == nil {
		t.Error("Orphans with no root: no error")
	}
}

func TestOverlaysRelativeRoot(t *testing.T) {
	lo := lowers(t, 1)
	dir := t.TempDir()
	t.Chdir(dir)
	ms := mustParse(t, lo[0]+":/w:overlay")
	paths, err := Overlays{Root: "state/overlay"}.Prepare("abc", ms, -1, -1)
	if err != nil {
		t.Fatal(err)
	}
	up, _ := paths(ms[0])
	if want := filepath.Join(dir, "state", "overlay", "abc", "0", "upper"); up != want {
		t.Errorf("upper = %q, want the absolute %q (the daemon has another working dir)", up, want)
	}
}
