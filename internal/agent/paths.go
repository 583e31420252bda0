package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// resolveCwd turns a request's cwd into an absolute, clean path: empty means
// the workdir, a relative path is taken from the workdir. It does not look
// at the file system. workdir must be absolute.
func resolveCwd(workdir, cwd string) (string, error) {
	if strings.IndexByte(cwd, 0) >= 0 {
		return "", errors.New("cwd contains a NUL byte")
	}
	if cwd == "" {
		return filepath.Clean(workdir), nil
	}
	if filepath.IsAbs(cwd) {
		return filepath.Clean(cwd), nil
	}
	return filepath.Join(workdir, cwd), nil
}

// checkDir reports, in words fit for a caller, why dir cannot be a working
// directory.
func checkDir(dir string) error {
	st, err := os.Stat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("cwd %q does not exist", dir)
	case err != nil:
		return fmt.Errorf("cwd %q: %w", dir, err)
	case !st.IsDir():
		return fmt.Errorf("cwd %q is not a directory", dir)
	}
	return nil
}

// lookPath finds the program argv0 as a shell would for a child whose PATH
// is pathEnv and whose working directory is cwd. A name with a slash is
// taken as a path (relative to cwd).
func lookPath(argv0, pathEnv, cwd string) (string, error) {
	if argv0 == "" {
		return "", errors.New("program name is empty")
	}
	if strings.Contains(argv0, "/") {
		p := argv0
		if !filepath.IsAbs(p) {
			p = filepath.Join(cwd, p)
		}
		if err := checkExecutable(p); err != nil {
			return "", fmt.Errorf("program %q: %w", argv0, err)
		}
		return p, nil
	}
	for _, dir := range filepath.SplitList(pathEnv) {
		if dir == "" {
			dir = "."
		}
		if !filepath.IsAbs(dir) {
			dir = filepath.Join(cwd, dir)
		}
		p := filepath.Join(dir, argv0)
		if checkExecutable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("program %q not found in PATH %q", argv0, pathEnv)
}

var errNotExecutable = errors.New("is not an executable file")

func checkExecutable(p string) error {
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.New("does not exist")
	}
	if err != nil {
		return err
	}
	if st.IsDir() || st.Mode()&0o111 == 0 {
		return errNotExecutable
	}
	return nil
}

// detectShell picks the shell for command strings: bash when the image has
// it, sh otherwise.
func detectShell(candidates ...string) string {
	for _, c := range candidates {
		if checkExecutable(c) == nil {
			return c
		}
	}
	return candidates[len(candidates)-1]
}
