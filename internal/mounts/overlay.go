package mounts

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Overlays manages the host dirs of overlay mounts:
// <Root>/<sandbox id>/<mount index>/{upper,work}. The upper dir receives
// everything a sandbox writes through the overlay; the work dir is the
// kernel's scratch space. Both must be on one filesystem, which they are.
//
// The paths must mean the same on the Docker daemon's host as here, as they
// do with a local daemon. The daemon (root) mounts the overlay, so files the
// sandbox writes may be owned by root: a berth that does not run as root may
// be unable to Remove them, and gets an error saying so.
type Overlays struct{ Root string } // e.g. <berth state dir>/overlay

// Prepare makes <Root>/<sandboxID>/<index>/{upper,work} for each overlay
// mount of ms: upper and work mode 0755, chowned to uid:gid when either is
// >= 0 (-1 leaves that id alone), the dirs above them 0700. Dirs that exist
// are kept with their content. It refuses a lower dir that is not an
// existing directory, or that overlaps the overlay dirs (the kernel cannot
// mount a layer inside another, and making the dirs would write into the
// host dir). On error it removes the dirs it made.
//
// The returned func gives the upper and work dirs of an overlay mount, by its
// Index, for Docker; for other mounts it returns "", "".
func (o Overlays) Prepare(sandboxID string, ms []Mount, uid, gid int) (func(Mount) (upper, work string), error) {
	if err := checkID(sandboxID); err != nil {
		return nil, fmt.Errorf("prepare overlay dirs: %w", err)
	}
	var overlays []Mount
	for _, m := range ms {
		if m.Kind == KindOverlay {
			overlays = append(overlays, m)
		}
	}
	if len(overlays) == 0 {
		return func(Mount) (string, string) { return "", "" }, nil
	}
	root, err := o.root()
	if err != nil {
		return nil, fmt.Errorf("prepare overlay dirs of sandbox %s: %w", sandboxID, err)
	}
	dir := filepath.Join(root, sandboxID)
	paths := func(m Mount) (string, string) {
		if m.Kind != KindOverlay {
			return "", ""
		}
		d := filepath.Join(dir, strconv.Itoa(m.Index))
		return filepath.Join(d, "upper"), filepath.Join(d, "work")
	}

	var made []string // dirs this call created, removed again on error
	fail := func(err error) (func(Mount) (string, string), error) {
		for i := len(made) - 1; i >= 0; i-- {
			_ = os.RemoveAll(made[i])
		}
		return nil, fmt.Errorf("prepare overlay dirs of sandbox %s: %w", sandboxID, err)
	}
	for _, m := range overlays {
		if err := checkLower(m, dir); err != nil {
			return fail(err)
		}
		upper, work := paths(m)
		if err := os.MkdirAll(root, 0o700); err != nil {
			return fail(err)
		}
		for _, d := range []string{dir, filepath.Dir(upper)} {
			created, err := mkdir(d, 0o700)
			if err != nil {
				return fail(err)
			}
			if created {
				made = append(made, d)
			}
		}
		for _, d := range []string{upper, work} {
			if _, err := mkdir(d, 0o755); err != nil {
				return fail(err)
			}
			if err := os.Chmod(d, 0o755); err != nil { // whatever the umask
				return fail(err)
			}
		}
		// The root of the merged view takes the upper dir's mode and owner:
		// give it the lower dir's (or uid:gid when given), so the sandbox
		// may create files where the host dir would let it.
		if err := matchOwner(upper, m.Source, uid, gid); err != nil {
			return fail(fmt.Errorf("overlay of %s: %w", m, err))
		}
	}
	return paths, nil
}

// Remove deletes <Root>/<sandboxID> and all in it. A sandbox without overlay
// dirs is no error. Call it after the sandbox's container is gone: a running
// overlay still uses the dirs. It refuses ids that are not [a-z0-9]+, so it
// never leaves Root.
func (o Overlays) Remove(sandboxID string) error {
	if err := checkID(sandboxID); err != nil {
		return fmt.Errorf("remove overlay dirs: %w", err)
	}
	root, err := o.root()
	if err != nil {
		return fmt.Errorf("remove overlay dirs of sandbox %s: %w", sandboxID, err)
	}
	if err := os.RemoveAll(filepath.Join(root, sandboxID)); err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return fmt.Errorf("remove overlay dirs of sandbox %s: %w (files the sandbox wrote belong to the user it ran as; remove them as root)", sandboxID, err)
		}
		return fmt.Errorf("remove overlay dirs of sandbox %s: %w", sandboxID, err)
	}
	return nil
}

// Orphans lists, sorted, the ids of the sandboxes that have overlay dirs
// under Root, for a reconciler to Remove those whose sandbox is gone. A
// missing Root gives none; entries that are not sandbox dirs are ignored.
func (o Overlays) Orphans() ([]string, error) {
	root, err := o.root()
	if err != nil {
		return nil, fmt.Errorf("list overlay dirs: %w", err)
	}
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list overlay dirs: %w", err)
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && checkID(e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// root returns Root made absolute and clean, or says why it is unusable.
func (o Overlays) root() (string, error) {
	if o.Root == "" {
		return "", errors.New("overlay root dir is not set")
	}
	root, err := filepath.Abs(o.Root)
	if err != nil {
		return "", fmt.Errorf("overlay root dir %s: %w", quote(o.Root), err)
	}
	if root == "/" {
		return "", fmt.Errorf("overlay root dir %s is the filesystem root", quote(o.Root))
	}
	if strings.ContainsAny(root, `,:\`) {
		return "", fmt.Errorf(`overlay root dir %s contains ",", ":" or "\": the kernel's overlay options cannot carry them`, quote(root))
	}
	return root, nil
}

// checkID accepts the sandbox ids berth makes, so that a path built from one
// stays inside Root.
func checkID(id string) error {
	if id == "" {
		return errors.New("sandbox id is empty")
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return fmt.Errorf("sandbox id %s is not [a-z0-9]+", quote(id))
		}
	}
	return nil
}

// checkLower checks that the lower dir of overlay m is a directory and does
// not overlap dir, where its upper and work dirs go.
func checkLower(m Mount, dir string) error {
	fi, err := os.Stat(m.Source)
	if err != nil {
		return fmt.Errorf("overlay %s: lower dir: %w", quote(m.String()), err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("overlay %s: lower dir %s is not a directory", quote(m.String()), quote(m.Source))
	}
	lower, upper := resolve(m.Source), resolve(dir)
	if within(upper, lower) || within(lower, upper) {
		return fmt.Errorf("overlay %s: lower dir %s and the overlay dirs %s overlap (one is inside the other), "+
			"which the kernel refuses and which would write into the host dir: set another overlay root",
			quote(m.String()), quote(lower), quote(upper))
	}
	return nil
}

// resolve returns p with the symlinks of its longest existing prefix resolved.
func resolve(p string) string {
	p = filepath.Clean(p)
	var rest []string
	for {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(append([]string{r}, rest...)...)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(append([]string{p}, rest...)...)
		}
		rest = append([]string{filepath.Base(p)}, rest...)
		p = parent
	}
}

// within reports whether path p is dir or inside it; both are clean.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// mkdir makes dir with perm if it does not exist, and reports whether it did.
// Its parent must exist.
func mkdir(dir string, perm os.FileMode) (bool, error) {
	err := os.Mkdir(dir, perm)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrExist) {
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return false, nil
		}
	}
	return false, err
}

// matchOwner gives dir the mode of ref, and its owner: uid and gid where
// they are >= 0, else ref's (as root; others cannot chown).
func matchOwner(dir, ref string, uid, gid int) error {
	fi, err := os.Stat(ref)
	if err != nil {
		return err
	}
	if err := os.Chmod(dir, fi.Mode().Perm()|fi.Mode()&os.ModeSticky); err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		if uid < 0 {
			uid = int(st.Uid)
		}
		if gid < 0 {
			gid = int(st.Gid)
		}
	}
	if err := os.Chown(dir, uid, gid); err != nil && os.Geteuid() == 0 {
		return err
	}
	return nil
}
