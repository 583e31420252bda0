package agentapi

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"
)

// Paths of the files API. Every one needs the key. A path parameter is
// absolute, or relative to the sandbox's workdir.
const (
	// PathFiles: GET reads a file (query path, offset/length or
	// start_line/end_line), PUT writes one atomically (query path, mode,
	// mkdirs, append; body = content), DELETE removes one (query path,
	// recursive).
	PathFiles      = "/api/v1/files"
	PathFilesStat  = "/api/v1/files/stat"  // GET ?path=&follow=1 → FileInfo
	PathFilesList  = "/api/v1/files/list"  // GET ?path=&recursive=1&glob=&hidden=0&limit= → ListResult
	PathFilesMkdir = "/api/v1/files/mkdir" // POST MkdirRequest → FileInfo
	PathFilesMove  = "/api/v1/files/move"  // POST MoveRequest → FileInfo
	// PathFilesTar: GET streams a tar of a file or directory (query path);
	// PUT extracts a tar (optionally gzip) into a directory (query path).
	PathFilesTar = "/api/v1/files/tar"
)

// Headers of the files API.
const (
	// HeaderFileStat carries the FileInfo of the file read or the root of
	// the tar downloaded, as base64 (standard encoding) of its JSON.
	HeaderFileStat = "X-Berth-Stat"
	HeaderFileSize = "X-Berth-Size" // size of the whole file read, in bytes (decimal)
	HeaderFileMode = "X-Berth-Mode" // mode of the file read, octal, e.g. 0644
	// TrailerTarErrors is a trailer of a tar download: base64 of the JSON
	// TarProblems, present only when entries could not be read (the tar
	// then lacks them).
	TrailerTarErrors = "X-Berth-Tar-Errors"
)

// Media types of the files API.
const (
	ContentTypeOctets = "application/octet-stream"
	ContentTypeTar    = "application/x-tar"
)

// More error codes carried in Error.Code, used by the files API.
const (
	CodeForbidden           = "forbidden"            // 403: the sandbox user may not do this
	CodeInsufficientStorage = "insufficient_storage" // 507: no space left (or quota exceeded)
)

// Types of FileInfo.Type.
const (
	FileTypeFile    = "file"
	FileTypeDir     = "dir"
	FileTypeSymlink = "symlink"
	FileTypeOther   = "other" // fifo, socket, device
)

// FileInfo describes one path, as lstat(2) sees it (stat(2) with follow=1).
type FileInfo struct {
	Path       string    `json:"path"` // absolute and clean
	Name       string    `json:"name"` // last element of Path
	Type       string    `json:"type"` // file, dir, symlink or other
	Size       int64     `json:"size"`
	Mode       string    `json:"mode"` // permission and setuid/setgid/sticky bits in octal, e.g. "0644", "1777"
	IsDir      bool      `json:"is_dir"`
	IsSymlink  bool      `json:"is_symlink"`
	LinkTarget string    `json:"link_target,omitempty"` // a symlink's target, as stored
	UID        int       `json:"uid"`
	GID        int       `json:"gid"`
	ModTime    time.Time `json:"mtime"`
}

// Perm returns Mode as an fs.FileMode (permission and special bits; the
// type bits come from Type). A malformed Mode gives 0.
func (fi FileInfo) Perm() fs.FileMode {
	m, err := ParseMode(fi.Mode)
	if err != nil {
		return 0
	}
	switch fi.Type {
	case FileTypeDir:
		m |= fs.ModeDir
	case FileTypeSymlink:
		m |= fs.ModeSymlink
	}
	return m
}

// ListResult is the answer of GET /api/v1/files/list.
type ListResult struct {
	Path string `json:"path"` // the directory listed, absolute
	// Entries: in each directory, directories first, then the rest, each
	// group by name (bytewise). A recursive listing goes breadth first, so
	// a truncated one still has the top levels complete.
	Entries   []FileInfo `json:"entries"`
	Truncated bool       `json:"truncated"`        // more entries matched than the limit
	Errors    []string   `json:"errors,omitempty"` // subdirectories that could not be read (recursive), at most 100
}

// MkdirRequest is the body of POST /api/v1/files/mkdir: mkdir -p.
type MkdirRequest struct {
	Path string `json:"path"`
	Mode string `json:"mode,omitempty"` // octal, for the directories created; default "0755"
}

// MoveRequest is the body of POST /api/v1/files/move: rename From to To.
// To is the new path itself, not a directory to move into.
type MoveRequest struct {
	From      string `json:"from"`
	To        string `json:"to"`
	Overwrite bool   `json:"overwrite,omitempty"` // replace an existing To (a directory only if empty)
}

// TarResult is the answer of PUT /api/v1/files/tar, and what ExtractTar
// and WriteTar report.
type TarResult struct {
	Path      string `json:"path"` // directory extracted into, or path archived
	Files     int    `json:"files"`
	Dirs      int    `json:"dirs"`
	Symlinks  int    `json:"symlinks"`
	HardLinks int    `json:"hard_links"`
	Skipped   int    `json:"skipped"` // fifos, sockets and devices, left out
	Bytes     int64  `json:"bytes"`   // content bytes of regular files
}

// TarProblems lists entries a tar download had to leave out.
type TarProblems struct {
	Count    int      `json:"count"`
	Problems []string `json:"problems"` // the first few, each naming its path
}

func (p *TarProblems) Error() string {
	msg := fmt.Sprintf("%d entries could not be archived", p.Count)
	if len(p.Problems) > 0 {
		msg += ": " + strings.Join(p.Problems, "; ")
	}
	if p.Count > len(p.Problems) {
		msg += "; …"
	}
	return msg
}

// Reading ranges, as query parameters of GET /api/v1/files.
const (
	QueryPath      = "path"
	QueryOffset    = "offset"     // first byte, from 0
	QueryLength    = "length"     // bytes from offset; absent = to the end
	QueryStartLine = "start_line" // first line, from 1
	QueryEndLine   = "end_line"   // last line, inclusive; absent = to the end
	QueryMode      = "mode"
	QueryMkdirs    = "mkdirs"
	QueryAppend    = "append"
	QueryRecursive = "recursive"
	QueryGlob      = "glob"
	QueryHidden    = "hidden"
	QueryLimit     = "limit"
	QueryFollow    = "follow"
)

// DefaultListLimit and MaxListLimit bound a listing.
const (
	DefaultListLimit = 10_000
	MaxListLimit     = 100_000
)

// FormatMode renders the permission and special bits of m in octal, as
// FileInfo.Mode: "0644", "4755".
func FormatMode(m fs.FileMode) string {
	return fmt.Sprintf("%04o", UnixMode(m))
}

// UnixMode is m's permission and special bits as chmod(2) takes them.
func UnixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// FromUnixMode turns chmod(2) bits (at most 07777) into an fs.FileMode.
func FromUnixMode(u uint32) fs.FileMode {
	m := fs.FileMode(u & 0o777)
	if u&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if u&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if u&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

// ParseMode reads an octal mode such as "644", "0644" or "0o4755" (at most
// 07777) into an fs.FileMode with its setuid, setgid and sticky bits.
func ParseMode(s string) (fs.FileMode, error) {
	digits := strings.TrimPrefix(strings.TrimPrefix(s, "0o"), "0O")
	if digits == "" || len(digits) > 5 {
		return 0, fmt.Errorf("mode %q is not an octal number from 0 to 7777", s)
	}
	u, err := strconv.ParseUint(digits, 8, 32)
	if err != nil || u > 0o7777 {
		return 0, fmt.Errorf("mode %q is not an octal number from 0 to 7777", s)
	}
	return FromUnixMode(uint32(u)), nil
}

// Errors of the tar format rules below; test with errors.Is.
var (
	// ErrUnsafeEntry: a tar entry would land outside the directory it is
	// extracted into (absolute name, "..", a symlink pointing out).
	ErrUnsafeEntry = errors.New("unsafe tar entry")
	// ErrBadArchive: the body is not a readable tar (or gzip of one).
	ErrBadArchive = errors.New("not a valid tar archive")
)

// CleanTarName checks a tar entry name and returns it relative and clean,
// without a trailing slash; "" is the archive's root ("." or "./"). It
// rejects, wrapping ErrUnsafeEntry, an empty or absolute name, a NUL byte
// and any ".." element, so an entry can only name a path below the
// directory it is extracted into.
func CleanTarName(name string) (string, error) {
	switch {
	case name == "":
		return "", fmt.Errorf("%w: empty name", ErrUnsafeEntry)
	case strings.IndexByte(name, 0) >= 0:
		return "", fmt.Errorf("%w: name %q contains a NUL byte", ErrUnsafeEntry, name)
	case strings.HasPrefix(name, "/"):
		return "", fmt.Errorf("%w: name %q is absolute", ErrUnsafeEntry, name)
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("%w: name %q contains \"..\"", ErrUnsafeEntry, name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", nil
	}
	return clean, nil
}

// CheckLinkTarget checks the target of a symlink entry named name (clean,
// relative, as CleanTarName returns it) extracted into root (absolute):
// a relative target must stay below root when taken from the link's
// directory, an absolute one must lie below root. It only looks at the
// strings; ExtractTar also checks, on the file system, that chains of
// links stay inside.
func CheckLinkTarget(root, name, target string) error {
	switch {
	case target == "":
		return fmt.Errorf("%w: symlink %q has an empty target", ErrUnsafeEntry, name)
	case strings.IndexByte(target, 0) >= 0:
		return fmt.Errorf("%w: symlink %q target contains a NUL byte", ErrUnsafeEntry, name)
	}
	if path.IsAbs(target) {
		if !within(path.Clean(root), path.Clean(target)) {
			return fmt.Errorf("%w: symlink %q points to %q, outside %s", ErrUnsafeEntry, name, target, root)
		}
		return nil
	}
	joined := path.Join(path.Dir(name), target)
	if joined == ".." || strings.HasPrefix(joined, "../") {
		return fmt.Errorf("%w: symlink %q points to %q, outside %s", ErrUnsafeEntry, name, target, root)
	}
	return nil
}

// within reports whether p is root or below it; both absolute and clean.
func within(root, p string) bool {
	if root == "/" {
		return true
	}
	return p == root || strings.HasPrefix(p, root+"/")
}
