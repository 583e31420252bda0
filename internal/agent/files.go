package agent

import (
	"bufio"
	"cmp"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// fileRoutes serves the files API. Every operation runs with the sandbox
// user's file system identity (see asUser), so the kernel enforces the
// user's permissions and what is created belongs to the user.
func (s *Server) fileRoutes() []route {
	return []route{
		{http.MethodGet, agentapi.PathFiles, s.handleReadFile},
		{http.MethodPut, agentapi.PathFiles, s.handleWriteFile},
		{http.MethodDelete, agentapi.PathFiles, s.handleRemove},
		{http.MethodGet, agentapi.PathFilesStat, s.handleStat},
		{http.MethodGet, agentapi.PathFilesList, s.handleList},
		{http.MethodPost, agentapi.PathFilesMkdir, s.handleMkdir},
		{http.MethodPost, agentapi.PathFilesMove, s.handleMove},
		{http.MethodGet, agentapi.PathFilesTar, s.handleDownloadTar},
		{http.MethodPut, agentapi.PathFilesTar, s.handleUploadTar},
	}
}

// fileInfo describes p from fi (and the symlink target, if any).
func fileInfo(p string, fi fs.FileInfo, target string) agentapi.FileInfo {
	info := agentapi.FileInfo{
		Path:       p,
		Name:       filepath.Base(p),
		Size:       fi.Size(),
		Mode:       agentapi.FormatMode(fi.Mode()),
		IsDir:      fi.IsDir(),
		IsSymlink:  fi.Mode()&fs.ModeSymlink != 0,
		LinkTarget: target,
		ModTime:    fi.ModTime().UTC(),
	}
	switch {
	case info.IsDir:
		info.Type = agentapi.FileTypeDir
	case info.IsSymlink:
		info.Type = agentapi.FileTypeSymlink
	case fi.Mode().IsRegular():
		info.Type = agentapi.FileTypeFile
	default:
		info.Type = agentapi.FileTypeOther
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		info.UID, info.GID = int(st.Uid), int(st.Gid)
	}
	return info
}

// lstatInfo describes p without following a last symlink (with follow,
// what it points to). Run it as the user.
func lstatInfo(p string, follow bool) (agentapi.FileInfo, error) {
	stat := os.Lstat
	if follow {
		stat = os.Stat
	}
	fi, err := stat(p)
	if err != nil {
		return agentapi.FileInfo{}, err
	}
	var target string
	if fi.Mode()&fs.ModeSymlink != 0 {
		if target, err = os.Readlink(p); err != nil {
			return agentapi.FileInfo{}, err
		}
	}
	return fileInfo(p, fi, target), nil
}

// kindOf names what a non-regular file is, for messages.
func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeSymlink != 0:
		return "a symlink"
	case m&fs.ModeNamedPipe != 0:
		return "a fifo"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeDevice != 0:
		return "a device"
	}
	return "not a regular file"
}

// setStatHeaders describes the file of a read or tar download.
func setStatHeaders(h http.Header, info agentapi.FileInfo) {
	if enc, err := agentapi.EncodeHeaderJSON(info); err == nil {
		h.Set(agentapi.HeaderFileStat, enc)
	}
	h.Set(agentapi.HeaderFileSize, strconv.FormatInt(info.Size, 10))
	h.Set(agentapi.HeaderFileMode, info.Mode)
	h.Set("Last-Modified", info.ModTime.Format(http.TimeFormat))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
}

// handleReadFile streams a file, or a byte or line range of it. The file
// is opened as the user, then read by the handler: it is never held in
// memory (a byte range goes out with sendfile).
func (s *Server) handleReadFile(w http.ResponseWriter, r *http.Request) {
	q, e := parseFileQuery(r, agentapi.QueryPath, agentapi.QueryOffset, agentapi.QueryLength, agentapi.QueryStartLine, agentapi.QueryEndLine)
	if e != nil {
		writeError(w, e)
		return
	}
	p, e := q.path(s.opts.Workdir, "")
	if e != nil {
		writeError(w, e)
		return
	}
	rr, err := parseReadRange(q.get(agentapi.QueryOffset), q.get(agentapi.QueryLength), q.get(agentapi.QueryStartLine), q.get(agentapi.QueryEndLine))
	if err != nil {
		writeError(w, badRequest("%v", err))
		return
	}
	var f *os.File
	err = s.asUser(func() error {
		// O_NONBLOCK: opening a fifo must not hang; it is refused below.
		f, err = os.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		return err
	})
	if err != nil {
		writeError(w, s.fsError("read", p, err))
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		writeError(w, s.fsError("read", p, err))
		return
	}
	switch {
	case fi.IsDir():
		writeError(w, badRequest("read %s: is a directory; list it with GET %s", p, agentapi.PathFilesList))
		return
	case !fi.Mode().IsRegular():
		writeError(w, badRequest("read %s: is %s, not a regular file", p, kindOf(fi.Mode())))
		return
	}
	setStatHeaders(w.Header(), fileInfo(p, fi, ""))
	w.Header().Set("Content-Type", agentapi.ContentTypeOctets)
	if rr.lines {
		w.WriteHeader(http.StatusOK)
		if err := copyLines(w, f, rr.start, rr.end); err != nil {
			s.log.Debug("read lines", "path", p, "err", err)
		}
		return
	}
	start := min(rr.offset, fi.Size())
	n := fi.Size() - start
	if rr.length >= 0 {
		n = min(n, rr.length)
	}
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			writeError(w, s.fsError("read", p, err))
			return
		}
	}
	w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	// A LimitedReader over an *os.File lets net/http use sendfile.
	if _, err := io.Copy(w, &io.LimitedReader{R: f, N: n}); err != nil {
		s.log.Debug("read", "path", p, "err", err)
	}
}

// copyLines copies lines start..end (1-based, inclusive; end 0 = to the
// end) of r to w, streaming: a line longer than the buffer is copied in
// pieces. A last line without a newline counts as a line.
func copyLines(w io.Writer, r io.Reader, start, end int64) error {
	br := bufio.NewReaderSize(r, 64<<10)
	line := int64(1)
	for end == 0 || line <= end {
		chunk, err := br.ReadSlice('\n')
		if line >= start && len(chunk) > 0 {
			if _, werr := w.Write(chunk); werr != nil {
				return werr
			}
		}
		switch {
		case err == nil:
			line++
		case errors.Is(err, bufio.ErrBufferFull):
			// the same line goes on
		case errors.Is(err, io.EOF):
			return nil
		default:
			return err
		}
	}
	return nil
}

func (s *Server) handleStat(w http.ResponseWriter, r *http.Request) {
	q, e := parseFileQuery(r, agentapi.QueryPath, agentapi.QueryFollow)
	if e != nil {
		writeError(w, e)
		return
	}
	p, e := q.path(s.opts.Workdir, "")
	if e != nil {
		writeError(w, e)
		return
	}
	follow, e := q.flag(agentapi.QueryFollow, false)
	if e != nil {
		writeError(w, e)
		return
	}
	var info agentapi.FileInfo
	err := s.asUser(func() (err error) {
		info, err = lstatInfo(p, follow)
		return err
	})
	if err != nil {
		writeError(w, s.fsError("stat", p, err))
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// listOptions are the parameters of a listing.
type listOptions struct {
	recursive bool
	hidden    bool
	glob      string
	limit     int
}

// maxListErrors bounds ListResult.Errors.
const maxListErrors = 100

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	q, e := parseFileQuery(r, agentapi.QueryPath, agentapi.QueryRecursive, agentapi.QueryGlob, agentapi.QueryHidden, agentapi.QueryLimit)
	if e != nil {
		writeError(w, e)
		return
	}
	p, e := q.path(s.opts.Workdir, s.opts.Workdir)
	if e != nil {
		writeError(w, e)
		return
	}
	o := listOptions{glob: q.get(agentapi.QueryGlob), limit: agentapi.DefaultListLimit}
	if o.recursive, e = q.flag(agentapi.QueryRecursive, false); e != nil {
		writeError(w, e)
		return
	}
	if o.hidden, e = q.flag(agentapi.QueryHidden, true); e != nil {
		writeError(w, e)
		return
	}
	if o.glob != "" {
		if _, err := filepath.Match(o.glob, "x"); err != nil {
			writeError(w, badRequest("query parameter %q is %q: %v", agentapi.QueryGlob, o.glob, err))
			return
		}
	}
	if v := q.get(agentapi.QueryLimit); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > agentapi.MaxListLimit {
			writeError(w, badRequest("query parameter %q is %q; want 1 to %d", agentapi.QueryLimit, v, agentapi.MaxListLimit))
			return
		}
		o.limit = n
	}
	var res agentapi.ListResult
	err := s.asUser(func() (err error) {
		res, err = listDir(p, o)
		return err
	})
	switch {
	case errors.Is(err, errNotDir):
		writeError(w, badRequest("list %s: is not a directory; read it with GET %s or stat it with GET %s", p, agentapi.PathFiles, agentapi.PathFilesStat))
		return
	case err != nil:
		writeError(w, s.fsError("list", p, err))
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// errNotDir: a listing of something that is not a directory.
var errNotDir = errors.New("not a directory")

// listDir lists root breadth first: in each directory, directories first,
// then by name. Run it as the user.
func listDir(root string, o listOptions) (agentapi.ListResult, error) {
	fi, err := os.Stat(root)
	if err != nil {
		return agentapi.ListResult{}, err
	}
	if !fi.IsDir() {
		return agentapi.ListResult{}, errNotDir
	}
	res := agentapi.ListResult{Path: root, Entries: []agentapi.FileInfo{}}
	queue := []string{""}
	for len(queue) > 0 {
		rel := queue[0]
		queue = queue[1:]
		dir := filepath.Join(root, rel)
		ents, err := os.ReadDir(dir)
		if err != nil {
			if rel == "" {
				return res, err
			}
			if len(res.Errors) < maxListErrors {
				res.Errors = append(res.Errors, dir+": "+errText(err))
			}
			continue
		}
		slices.SortStableFunc(ents, func(a, b fs.DirEntry) int {
			if a.IsDir() != b.IsDir() {
				if a.IsDir() {
					return -1
				}
				return 1
			}
			return cmp.Compare(a.Name(), b.Name())
		})
		for _, ent := range ents {
			name := ent.Name()
			if !o.hidden && strings.HasPrefix(name, ".") {
				continue
			}
			childRel := filepath.Join(rel, name)
			if o.recursive && ent.IsDir() {
				queue = append(queue, childRel)
			}
			if o.glob != "" {
				subject := name
				if strings.Contains(o.glob, "/") {
					subject = childRel
				}
				if ok, _ := filepath.Match(o.glob, subject); !ok {
					continue
				}
			}
			if len(res.Entries) >= o.limit {
				res.Truncated = true
				return res, nil
			}
			info, err := lstatInfo(filepath.Join(dir, name), false)
			if errors.Is(err, fs.ErrNotExist) {
				continue // removed meanwhile
			}
			if err != nil {
				if len(res.Errors) < maxListErrors {
					res.Errors = append(res.Errors, filepath.Join(dir, name)+": "+errText(err))
				}
				continue
			}
			res.Entries = append(res.Entries, info)
		}
	}
	return res, nil
}

// errText is an error without the path a *fs.PathError repeats.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// parseDirMode reads the mode of a mkdir request; "" is 0755.
func parseDirMode(s string) (uint32, *apiError) {
	if s == "" {
		return 0o755, nil
	}
	m, err := agentapi.ParseMode(s)
	if err != nil {
		return 0, badRequest(`field "mode": %v`, err)
	}
	return agentapi.UnixMode(m), nil
}

func (s *Server) handleMkdir(w http.ResponseWriter, r *http.Request) {
	var req agentapi.MkdirRequest
	if e := decodeJSON(r.Body, s.opts.MaxRequestBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	p, err := resolveFilePath(s.opts.Workdir, req.Path)
	if err != nil {
		writeError(w, badRequest(`field "path" %v`, err))
		return
	}
	mode, e := parseDirMode(req.Mode)
	if e != nil {
		writeError(w, e)
		return
	}
	var (
		created bool
		info    agentapi.FileInfo
	)
	err = s.asUser(func() (err error) {
		if created, err = mkdirAll(p, mode); err != nil {
			return err
		}
		info, err = lstatInfo(p, true)
		return err
	})
	if err != nil {
		writeError(w, s.fsError("mkdir", p, err))
		return
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeJSON(w, status, info)
}

// mkdirAll is mkdir -p: it makes p (with mode, exact whatever the umask)
// and its missing parents (0755), and reports whether it made p. An
// existing directory, or a symlink to one, is fine; an existing file is
// ENOTDIR, naming the file. Run it as the user.
func mkdirAll(p string, mode uint32) (bool, error) {
	fi, err := os.Stat(p)
	switch {
	case err == nil && fi.IsDir():
		return false, nil
	case err == nil:
		return false, &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
	case !errors.Is(err, fs.ErrNotExist):
		return false, err
	}
	if parent := filepath.Dir(p); parent != p {
		if _, err := mkdirAll(parent, 0o755); err != nil {
			return false, err
		}
	}
	if err := os.Mkdir(p, 0o700); err != nil {
		if errors.Is(err, fs.ErrExist) { // made meanwhile
			if fi, serr := os.Stat(p); serr == nil && fi.IsDir() {
				return false, nil
			}
			return false, &fs.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
		}
		return false, err
	}
	if err := syscall.Chmod(p, mode); err != nil {
		return true, &fs.PathError{Op: "chmod", Path: p, Err: err}
	}
	return true, nil
}

func (s *Server) handleMove(w http.ResponseWriter, r *http.Request) {
	var req agentapi.MoveRequest
	if e := decodeJSON(r.Body, s.opts.MaxRequestBytes, &req); e != nil {
		writeError(w, e)
		return
	}
	from, err := resolveFilePath(s.opts.Workdir, req.From)
	if err != nil {
		writeError(w, badRequest(`field "from" %v`, err))
		return
	}
	to, err := resolveFilePath(s.opts.Workdir, req.To)
	if err != nil {
		writeError(w, badRequest(`field "to" %v`, err))
		return
	}
	if from == "/" || to == "/" {
		writeError(w, badRequest("move %s to %s: cannot move the root directory", from, to))
		return
	}
	var (
		info agentapi.FileInfo
		e    *apiError
	)
	err = s.asUser(func() error {
		info, e = s.move(from, to, req.Overwrite)
		return nil
	})
	if err != nil {
		e = s.fsError("move", from, err)
	}
	if e != nil {
		writeError(w, e)
		return
	}
	writeJSON(w, http.StatusOK, info)
}

// move renames from to to. Run it as the user.
func (s *Server) move(from, to string, overwrite bool) (agentapi.FileInfo, *apiError) {
	src, err := os.Lstat(from)
	if err != nil {
		return agentapi.FileInfo{}, s.fsError("move", from, err)
	}
	if from == to {
		info, err := lstatInfo(to, false)
		if err != nil {
			return info, s.fsError("move", to, err)
		}
		return info, nil
	}
	if strings.HasPrefix(to, from+"/") {
		return agentapi.FileInfo{}, badRequest("move %s to %s: cannot move a directory into itself", from, to)
	}
	err = renameNoReplace(from, to, overwrite)
	if errors.Is(err, syscall.EXDEV) {
		if !src.Mode().IsRegular() {
			return agentapi.FileInfo{}, badRequest("move %s to %s: crosses file systems; only a regular file can be moved across (download and upload a tar for the rest)", from, to)
		}
		err = moveFileAcross(from, to, src, overwrite)
	}
	switch {
	case errors.Is(err, syscall.EEXIST) && !overwrite:
		return agentapi.FileInfo{}, newAPIError(http.StatusConflict, agentapi.CodeConflict, "move %s: %s already exists; set \"overwrite\" to replace it", from, to)
	case errors.Is(err, syscall.EEXIST), errors.Is(err, syscall.ENOTEMPTY):
		return agentapi.FileInfo{}, newAPIError(http.StatusConflict, agentapi.CodeConflict, "move %s: %s is a directory that is not empty", from, to)
	case errors.Is(err, syscall.EISDIR):
		return agentapi.FileInfo{}, newAPIError(http.StatusConflict, agentapi.CodeConflict, "move %s: %s is a directory, %s is not", from, to, from)
	case errors.Is(err, syscall.ENOTDIR) && src.IsDir():
		return agentapi.FileInfo{}, newAPIError(http.StatusConflict, agentapi.CodeConflict, "move %s: %s is not a directory", from, to)
	case errors.Is(err, syscall.ENOENT):
		return agentapi.FileInfo{}, newAPIError(http.StatusNotFound, agentapi.CodeNotFound, "move %s: the directory of %s does not exist", from, to)
	case err != nil:
		return agentapi.FileInfo{}, s.fsError("move", to, err)
	}
	info, err := lstatInfo(to, false)
	if err != nil {
		return info, s.fsError("move", to, err)
	}
	return info, nil
}

// moveFileAcross moves a regular file to another file system: an atomic
// write of a copy at to (mode kept), then the removal of from.
func moveFileAcross(from, to string, src fs.FileInfo, overwrite bool) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	tmp, err := os.CreateTemp(filepath.Dir(to), "."+filepath.Base(to)+".berth-*")
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := io.Copy(tmp, in); err != nil {
		return err
	}
	if err := tmp.Chmod(src.Mode() & (fs.ModePerm | fs.ModeSticky)); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := renameNoReplace(tmp.Name(), to, overwrite); err != nil {
		return err
	}
	ok = true
	_ = os.Chtimes(to, time.Time{}, src.ModTime())
	return os.Remove(from)
}

func (s *Server) handleRemove(w http.ResponseWriter, r *http.Request) {
	q, e := parseFileQuery(r, agentapi.QueryPath, agentapi.QueryRecursive)
	if e != nil {
		writeError(w, e)
		return
	}
	p, e := q.path(s.opts.Workdir, "")
	if e != nil {
		writeError(w, e)
		return
	}
	recursive, e := q.flag(agentapi.QueryRecursive, false)
	if e != nil {
		writeError(w, e)
		return
	}
	if p == "/" {
		writeError(w, badRequest("remove /: refusing to remove the root directory"))
		return
	}
	err := s.asUser(func() error {
		fi, err := os.Lstat(p)
		switch {
		case err != nil:
			return err
		case fi.IsDir() && recursive:
			return os.RemoveAll(p)
		}
		return os.Remove(p)
	})
	if err != nil {
		if errors.Is(err, syscall.ENOTEMPTY) || errors.Is(err, syscall.EEXIST) {
			writeError(w, newAPIError(http.StatusConflict, agentapi.CodeConflict, "remove %s: directory is not empty; pass %s=1", p, agentapi.QueryRecursive))
			return
		}
		writeError(w, s.fsError("remove", p, err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
