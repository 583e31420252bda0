package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/internal/agentapi"
)

// resolveFilePath turns a path of the files API into an absolute, clean
// one: absolute as given, or relative to the workdir. It does not look at
// the file system; the sandbox user's permissions decide what it may touch.
func resolveFilePath(workdir, p string) (string, error) {
	switch {
	case p == "":
		return "", errors.New("is empty")
	case strings.IndexByte(p, 0) >= 0:
		return "", errors.New("contains a NUL byte")
	}
	return resolveCwd(workdir, p)
}

// fileQuery is the query string of a files request, checked: only known
// parameters, each at most once.
type fileQuery struct{ v url.Values }

func parseFileQuery(r *http.Request, allowed ...string) (fileQuery, *apiError) {
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return fileQuery{}, badRequest("query string: %v", err)
	}
	for k, vals := range v {
		if !slices.Contains(allowed, k) {
			return fileQuery{}, badRequest("unknown query parameter %q; %s %s takes %s", k, r.Method, r.URL.Path, strings.Join(allowed, ", "))
		}
		if len(vals) > 1 {
			return fileQuery{}, badRequest("query parameter %q is given %d times", k, len(vals))
		}
	}
	return fileQuery{v: v}, nil
}

func (q fileQuery) get(k string) string { return q.v.Get(k) }

// path resolves the path parameter; def is used when it is absent or
// empty ("" to require it).
func (q fileQuery) path(workdir, def string) (string, *apiError) {
	p := q.get(agentapi.QueryPath)
	if p == "" && def != "" {
		p = def
	}
	abs, err := resolveFilePath(workdir, p)
	if err != nil {
		return "", badRequest("query parameter %q %v", agentapi.QueryPath, err)
	}
	return abs, nil
}

// flag reads a boolean parameter: 1/true/yes or 0/false/no; absent is def.
func (q fileQuery) flag(k string, def bool) (bool, *apiError) {
	switch strings.ToLower(q.get(k)) {
	case "":
		if q.v.Has(k) {
			return true, nil // "?recursive" alone
		}
		return def, nil
	case "1", "true", "yes":
		return true, nil
	case "0", "false", "no":
		return false, nil
	}
	return false, badRequest("query parameter %q is %q; use 1 or 0", k, q.get(k))
}

// mode reads an octal mode parameter; ok is false when it is absent.
func (q fileQuery) mode(k string) (fs.FileMode, bool, *apiError) {
	if !q.v.Has(k) {
		return 0, false, nil
	}
	m, err := agentapi.ParseMode(q.get(k))
	if err != nil {
		return 0, false, badRequest("query parameter %q: %v", k, err)
	}
	return m, true, nil
}

// readRange is the part of a file GET /api/v1/files reads.
type readRange struct {
	offset int64 // bytes
	length int64 // -1: to the end
	lines  bool  // a line range instead of a byte range
	start  int64 // first line, from 1
	end    int64 // last line, inclusive; 0: to the end
}

// parseReadRange reads offset/length or start_line/end_line (strings as in
// the query; "" = absent). Mixing the two is an error.
func parseReadRange(offset, length, startLine, endLine string) (readRange, error) {
	rr := readRange{length: -1}
	var err error
	num := func(name, s string, min int64) (int64, error) {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("query parameter %q is %q; want an integer", name, s)
		}
		if n < min {
			return 0, fmt.Errorf("query parameter %q is %d; want at least %d", name, n, min)
		}
		return n, nil
	}
	if (offset != "" || length != "") && (startLine != "" || endLine != "") {
		return rr, errors.New(`give a byte range ("offset", "length") or a line range ("start_line", "end_line"), not both`)
	}
	if offset != "" {
		if rr.offset, err = num(agentapi.QueryOffset, offset, 0); err != nil {
			return rr, err
		}
	}
	if length != "" {
		if rr.length, err = num(agentapi.QueryLength, length, 0); err != nil {
			return rr, err
		}
	}
	if startLine == "" && endLine == "" {
		return rr, nil
	}
	rr.lines, rr.start = true, 1
	if startLine != "" {
		if rr.start, err = num(agentapi.QueryStartLine, startLine, 1); err != nil {
			return rr, err
		}
	}
	if endLine != "" {
		if rr.end, err = num(agentapi.QueryEndLine, endLine, 1); err != nil {
			return rr, err
		}
		if rr.end < rr.start {
			return rr, fmt.Errorf(`"end_line" %d is before "start_line" %d`, rr.end, rr.start)
		}
	}
	return rr, nil
}

// fsError turns a file system error of op on path p into the answer for
// the caller: a mistake of the caller (missing path, no permission, a
// path in the way) is a 4xx naming the path, never a 500. When err names a
// path itself (a *fs.PathError), that path is the one reported: it may be
// a parent or a child of p.
func (s *Server) fsError(op, p string, err error) *apiError {
	var pe *fs.PathError
	if errors.As(err, &pe) && pe.Path != "" {
		p = pe.Path
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) {
		return newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, "%s %s: %v", op, p, err)
	}
	conflict := func(what string) *apiError {
		return newAPIError(http.StatusConflict, agentapi.CodeConflict, "%s %s: %s", op, p, what)
	}
	switch errno {
	case syscall.ENOENT:
		return newAPIError(http.StatusNotFound, agentapi.CodeNotFound, "%s %s: no such file or directory", op, p)
	case syscall.EACCES, syscall.EPERM:
		return newAPIError(http.StatusForbidden, agentapi.CodeForbidden, "%s %s: permission denied for the sandbox user %s (uid %d)", op, p, s.user.Name, s.user.UID)
	case syscall.EROFS:
		return newAPIError(http.StatusForbidden, agentapi.CodeForbidden, "%s %s: read-only file system", op, p)
	case syscall.EEXIST:
		return conflict("already exists")
	case syscall.ENOTEMPTY:
		return conflict("directory is not empty")
	case syscall.ENOTDIR:
		return conflict("is not a directory (or a path element before it is not)")
	case syscall.EISDIR:
		return conflict("is a directory")
	case syscall.ETXTBSY, syscall.EBUSY:
		return conflict("is busy")
	case syscall.EMLINK:
		return conflict("has too many links")
	case syscall.ELOOP:
		return badRequest("%s %s: too many levels of symbolic links", op, p)
	case syscall.ENAMETOOLONG:
		return badRequest("%s %s: file name too long", op, p)
	case syscall.EINVAL:
		return badRequest("%s %s: invalid argument", op, p)
	case syscall.EXDEV:
		return badRequest("%s %s: crosses file systems", op, p)
	case syscall.ENXIO:
		return badRequest("%s %s: no such device (a fifo with no reader?)", op, p)
	case syscall.EFBIG:
		return newAPIError(http.StatusRequestEntityTooLarge, agentapi.CodeTooLarge, "%s %s: file too large", op, p)
	case syscall.ENOSPC, syscall.EDQUOT:
		return newAPIError(http.StatusInsufficientStorage, agentapi.CodeInsufficientStorage, "%s %s: no space left on device (or quota exceeded)", op, p)
	}
	return newAPIError(http.StatusInternalServerError, agentapi.CodeInternal, "%s %s: %v", op, p, err)
}
