package agent

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/berth-dev/berth/internal/agentapi"
)

// writeRequest is a parsed PUT /api/v1/files.
type writeRequest struct {
	path    string
	mode    fs.FileMode
	modeSet bool
	mkdirs  bool
	append  bool
}

// maxLinkHops bounds the symlinks followed to find a write's target.
const maxLinkHops = 40

// writeBuf is the buffer of one file write.
const writeBuf = 256 << 10

func (s *Server) handleWriteFile(w http.ResponseWriter, r *http.Request) {
	q, e := parseFileQuery(r, agentapi.QueryPath, agentapi.QueryMode, agentapi.QueryMkdirs, agentapi.QueryAppend)
	if e != nil {
		writeError(w, e)
		return
	}
	var req writeRequest
	if req.path, e = q.path(s.opts.Workdir, ""); e != nil {
		writeError(w, e)
		return
	}
	if req.mode, req.modeSet, e = q.mode(agentapi.QueryMode); e != nil {
		writeError(w, e)
		return
	}
	if req.mkdirs, e = q.flag(agentapi.QueryMkdirs, false); e != nil {
		writeError(w, e)
		return
	}
	if req.append, e = q.flag(agentapi.QueryAppend, false); e != nil {
		writeError(w, e)
		return
	}
	body := &bodyReader{r: r.Body}
	var (
		info    agentapi.FileInfo
		created bool
	)
	if req.append {
		info, created, e = s.appendFile(body, req)
	} else {
		info, created, e = s.writeFile(body, req)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, info)
}

// bodyReader remembers a failure to read the request body, to tell it
// from a failure to write the file.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}

// copyError reports a failed copy of the body into the file at p.
func (s *Server) copyError(body *bodyReader, p string, err error) *apiError {
	if body.err != nil {
		return badRequest("write %s: reading the request body: %v", p, body.err)
	}
	return s.fsError("write", p, err)
}

// newFileMode is the mode a write gives: the requested one, else the
// existing file's, else 0644. A non-root user never gets setuid or setgid
// bits from the files API: the agent may chown the file back to another
// owner (root) afterwards.
func (s *Server) newFileMode(req writeRequest, old fs.FileInfo) uint32 {
	mode := uint32(0o644)
	switch {
	case req.modeSet:
		mode = agentapi.UnixMode(req.mode)
	case old != nil:
		mode = agentapi.UnixMode(old.Mode())
	}
	if s.user.UID != 0 {
		mode &^= 0o6000
	}
	return mode
}

// writeFile replaces the file atomically: a temporary file in the same
// directory, written and fsynced, then renamed over the target, so a
// reader sees the old content or the new, never a part. The temporary
// file is made by the user (so the user's permissions on the directory
// decide); an existing file's owner and group are then given back to it
// by the agent (root), and its mode kept.
func (s *Server) writeFile(body *bodyReader, req writeRequest) (agentapi.FileInfo, bool, *apiError) {
	var (
		target string
		old    fs.FileInfo
		tmp    *os.File
		e      *apiError
	)
	err := s.asUser(func() error {
		target, old, tmp, e = s.prepareWrite(req)
		return nil
	})
	if err != nil {
		return agentapi.FileInfo{}, false, s.fsError("write", req.path, err)
	}
	if e != nil {
		return agentapi.FileInfo{}, false, e
	}
	cleanup := func() {
		tmp.Close()
		_ = s.asUser(func() error { return os.Remove(tmp.Name()) })
	}
	// The body is copied here, not on a thread acting as the user: the
	// descriptor is open already, and a slow client must not hold one of
	// those few threads.
	buf := make([]byte, writeBuf)
	if _, err := io.CopyBuffer(writerOnly{tmp}, body, buf); err != nil {
		cleanup()
		return agentapi.FileInfo{}, false, s.copyError(body, target, err)
	}
	// As the agent: give an existing file's owner back, then set the mode
	// (chown clears setuid and setgid bits), on the descriptor.
	if old != nil {
		st := old.Sys().(*syscall.Stat_t)
		if int(st.Uid) != s.user.UID || int(st.Gid) != s.user.GID {
			if err := tmp.Chown(int(st.Uid), int(st.Gid)); err != nil {
				if os.Geteuid() == 0 {
					cleanup()
					return agentapi.FileInfo{}, false, s.fsError("write", target, err)
				}
				s.log.Warn("write: cannot keep the owner (the agent is not root)", "path", target, "uid", st.Uid, "gid", st.Gid)
			}
		}
	}
	if err := unix.Fchmod(int(tmp.Fd()), s.newFileMode(req, old)); err != nil {
		cleanup()
		return agentapi.FileInfo{}, false, s.fsError("write", target, err)
	}
	var info agentapi.FileInfo
	err = s.asUser(func() error {
		if err := tmp.Sync(); err != nil {
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		// No fsync of the directory: the content is on disk before the
		// rename, so after a crash the file is whole, old or new; the
		// rename itself reaches the disk with the file system's next
		// commit. (A directory fsync here is a second journal commit: it
		// doubled the cost of a 1 MiB write.)
		if err := os.Rename(tmp.Name(), target); err != nil {
			return err
		}
		var err error
		info, err = lstatInfo(target, false)
		return err
	})
	if err != nil {
		cleanup()
		return agentapi.FileInfo{}, false, s.fsError("write", target, err)
	}
	return info, old == nil, nil
}

// prepareWrite, as the user, finds the target, checks it, and makes the
// temporary file next to it that the body goes into.
func (s *Server) prepareWrite(req writeRequest) (string, fs.FileInfo, *os.File, *apiError) {
	target, err := finalTarget(req.path)
	if err != nil {
		return "", nil, nil, s.fsError("write", req.path, err)
	}
	old, err := os.Stat(target)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		old = nil
		if req.mkdirs {
			if _, err := mkdirAll(filepath.Dir(target), 0o755); err != nil {
				return "", nil, nil, s.fsError("write", target, err)
			}
		}
	case err != nil:
		return "", nil, nil, s.fsError("write", target, err)
	case old.IsDir():
		return "", nil, nil, badRequest("write %s: is a directory", target)
	case !old.Mode().IsRegular():
		return "", nil, nil, badRequest("write %s: is %s, not a regular file", target, kindOf(old.Mode()))
	default:
		// The user must be allowed to write the file itself, not only its
		// directory: open it for writing (without truncating) to ask the
		// kernel.
		f, err := os.OpenFile(target, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil && !errors.Is(err, syscall.ETXTBSY) {
			return "", nil, nil, s.fsError("write", target, err)
		}
		if f != nil {
			f.Close()
		}
		st := old.Sys().(*syscall.Stat_t)
		if req.modeSet && s.user.UID != 0 && int(st.Uid) != s.user.UID {
			return "", nil, nil, newAPIError(http.StatusForbidden, agentapi.CodeForbidden,
				"write %s: cannot change the mode of a file of uid %d (the sandbox user is uid %d); leave out %q", target, st.Uid, s.user.UID, agentapi.QueryMode)
		}
	}
	tmp, err := os.CreateTemp(filepath.Dir(target), "."+filepath.Base(target)+".berth-*")
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", nil, nil, newAPIError(http.StatusNotFound, agentapi.CodeNotFound,
				"write %s: directory %s does not exist; pass %s=1 to create it", target, filepath.Dir(target), agentapi.QueryMkdirs)
		}
		// Name the target, not the temporary file.
		e := s.fsError("write", target, unwrapPath(err))
		if old != nil && e.Status == http.StatusForbidden {
			e.Body.Message += fmt.Sprintf(": an atomic write creates a new file in %s (append=1 writes in place)", filepath.Dir(target))
		}
		return "", nil, nil, e
	}
	return target, old, tmp, nil
}

// writerOnly hides os.File's ReadFrom, so io.CopyBuffer uses its buffer.
type writerOnly struct{ io.Writer }

// appendFile appends the body to the file in place (made if missing):
// readers may see a part of what is appended, never less of the old
// content. A new file belongs to the user.
func (s *Server) appendFile(body *bodyReader, req writeRequest) (agentapi.FileInfo, bool, *apiError) {
	var (
		info    agentapi.FileInfo
		created bool
		e       *apiError
	)
	err := s.asUser(func() error {
		info, created, e = s.appendAsUser(body, req)
		return nil
	})
	if err != nil {
		return info, false, s.fsError("append", req.path, err)
	}
	return info, created, e
}

func (s *Server) appendAsUser(body *bodyReader, req writeRequest) (agentapi.FileInfo, bool, *apiError) {
	p := req.path
	open := func() (*os.File, bool, error) {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE|os.O_EXCL, 0o600)
		if err == nil {
			return f, true, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, err
		}
		// O_NONBLOCK: a fifo with no reader fails instead of hanging.
		f, err = os.OpenFile(p, os.O_WRONLY|os.O_APPEND|syscall.O_NONBLOCK, 0)
		return f, false, err
	}
	f, created, err := open()
	if errors.Is(err, fs.ErrNotExist) && req.mkdirs {
		if _, err := mkdirAll(filepath.Dir(p), 0o755); err != nil {
			return agentapi.FileInfo{}, false, s.fsError("append", p, err)
		}
		f, created, err = open()
	}
	switch {
	case errors.Is(err, syscall.EISDIR):
		return agentapi.FileInfo{}, false, badRequest("append %s: is a directory", p)
	case errors.Is(err, fs.ErrNotExist):
		return agentapi.FileInfo{}, false, newAPIError(http.StatusNotFound, agentapi.CodeNotFound,
			"append %s: directory %s does not exist; pass %s=1 to create it", p, filepath.Dir(p), agentapi.QueryMkdirs)
	case err != nil:
		return agentapi.FileInfo{}, false, s.fsError("append", p, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return agentapi.FileInfo{}, false, s.fsError("append", p, err)
	}
	if !fi.Mode().IsRegular() {
		return agentapi.FileInfo{}, false, badRequest("append %s: is %s, not a regular file", p, kindOf(fi.Mode()))
	}
	if created || req.modeSet {
		// As the user: changing the mode of someone else's file fails here.
		if err := f.Chmod(agentapi.FromUnixMode(s.newFileMode(req, nil))); err != nil {
			return agentapi.FileInfo{}, false, s.fsError("append", p, err)
		}
	}
	buf := make([]byte, writeBuf)
	if _, err := io.CopyBuffer(writerOnly{f}, body, buf); err != nil {
		return agentapi.FileInfo{}, false, s.copyError(body, p, err)
	}
	if err := f.Sync(); err != nil {
		return agentapi.FileInfo{}, false, s.fsError("append", p, err)
	}
	fi, err = f.Stat()
	if err != nil {
		return agentapi.FileInfo{}, false, s.fsError("append", p, err)
	}
	return fileInfo(p, fi, ""), created, nil
}

// finalTarget follows the symlinks of p's last element, so that a write
// replaces the file a link points to, not the link. A missing file is its
// own target. Run it as the user.
func finalTarget(p string) (string, error) {
	for range maxLinkHops {
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return p, nil
		}
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return p, nil
		}
		t, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		if !filepath.IsAbs(t) {
			t = filepath.Join(filepath.Dir(p), t)
		}
		p = filepath.Clean(t)
	}
	return "", &fs.PathError{Op: "write", Path: p, Err: syscall.ELOOP}
}

// renameNoReplace renames from to to; without overwrite it fails with
// EEXIST when to exists, atomically where the file system supports
// RENAME_NOREPLACE. Unlike os.Rename, it lets the kernel replace an empty
// directory.
func renameNoReplace(from, to string, overwrite bool) error {
	if overwrite {
		return wrapRename(from, to, unix.Rename(from, to))
	}
	err := unix.Renameat2(unix.AT_FDCWD, from, unix.AT_FDCWD, to, unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS) {
		// No RENAME_NOREPLACE here: check, then rename.
		if _, lerr := os.Lstat(to); lerr == nil {
			return wrapRename(from, to, unix.EEXIST)
		} else if !errors.Is(lerr, fs.ErrNotExist) {
			return lerr
		}
		err = unix.Rename(from, to)
	}
	return wrapRename(from, to, err)
}

func wrapRename(from, to string, err error) error {
	if err == nil {
		return nil
	}
	return &os.LinkError{Op: "rename", Old: from, New: to, Err: err}
}
