package agentapi

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ReadOptions choose a part of a file to read: a byte range or a line
// range, not both. The zero value reads the whole file.
type ReadOptions struct {
	Offset int64 // first byte, from 0
	Length int64 // bytes from Offset; 0 = to the end
	// StartLine and EndLine are 1-based and inclusive; 0 = from the first
	// line / to the last line. A last line without a newline counts.
	StartLine int64
	EndLine   int64
}

// WriteOptions tune WriteFile.
type WriteOptions struct {
	// Mode of the file; 0 means 0644 for a new file and the current mode
	// for an existing one.
	Mode   fs.FileMode
	Mkdirs bool // create missing parent directories (0755)
	Append bool // append instead of replacing (not atomic: written in place)
}

// ListOptions tune List.
type ListOptions struct {
	Recursive bool
	Glob      string // filepath.Match pattern on the name (on the path below the listed dir if it has a "/")
	NoHidden  bool   // leave out names starting with "." (and, recursive, what is below them)
	Limit     int    // 0 = DefaultListLimit; at most MaxListLimit
}

// ReadFile streams a file, or the part of it opts chooses, with the
// file's FileInfo. The caller closes the reader.
func (c *Client) ReadFile(ctx context.Context, p string, opts ReadOptions) (io.ReadCloser, FileInfo, error) {
	q := url.Values{QueryPath: {p}}
	if opts.Offset != 0 {
		q.Set(QueryOffset, strconv.FormatInt(opts.Offset, 10))
	}
	if opts.Length != 0 {
		q.Set(QueryLength, strconv.FormatInt(opts.Length, 10))
	}
	if opts.StartLine != 0 {
		q.Set(QueryStartLine, strconv.FormatInt(opts.StartLine, 10))
	}
	if opts.EndLine != 0 {
		q.Set(QueryEndLine, strconv.FormatInt(opts.EndLine, 10))
	}
	resp, err := c.doStream(ctx, http.MethodGet, PathFiles, q, nil, "")
	if err != nil {
		return nil, FileInfo{}, err
	}
	info, err := statHeader(resp.Header)
	if err != nil {
		resp.Body.Close()
		return nil, FileInfo{}, fmt.Errorf("agent read %s: %w", p, err)
	}
	return resp.Body, info, nil
}

// ReadFileBytes reads a whole file (or a range) into memory.
func (c *Client) ReadFileBytes(ctx context.Context, p string, opts ReadOptions) ([]byte, FileInfo, error) {
	rc, info, err := c.ReadFile(ctx, p, opts)
	if err != nil {
		return nil, FileInfo{}, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, FileInfo{}, fmt.Errorf("agent read %s: %w", p, err)
	}
	return data, info, nil
}

// WriteFile writes r to the file at p, atomically unless opts.Append: a
// reader of the file sees the old content or the new, never a part. An
// existing file keeps its owner and mode; a new one belongs to the
// sandbox user.
func (c *Client) WriteFile(ctx context.Context, p string, r io.Reader, opts WriteOptions) (FileInfo, error) {
	q := url.Values{QueryPath: {p}}
	if opts.Mode != 0 {
		q.Set(QueryMode, FormatMode(opts.Mode))
	}
	if opts.Mkdirs {
		q.Set(QueryMkdirs, "1")
	}
	if opts.Append {
		q.Set(QueryAppend, "1")
	}
	if r == nil {
		r = http.NoBody
	}
	resp, err := c.doStream(ctx, http.MethodPut, PathFiles, q, r, ContentTypeOctets)
	if err != nil {
		return FileInfo{}, err
	}
	var info FileInfo
	return info, decodeBody(resp, &info, "write "+p)
}

// Stat describes p itself (a symlink is not followed).
func (c *Client) Stat(ctx context.Context, p string) (FileInfo, error) {
	return c.stat(ctx, p, false)
}

// StatFollow describes what p points to when it is a symlink.
func (c *Client) StatFollow(ctx context.Context, p string) (FileInfo, error) {
	return c.stat(ctx, p, true)
}

func (c *Client) stat(ctx context.Context, p string, follow bool) (FileInfo, error) {
	q := url.Values{QueryPath: {p}}
	if follow {
		q.Set(QueryFollow, "1")
	}
	resp, err := c.doStream(ctx, http.MethodGet, PathFilesStat, q, nil, "")
	if err != nil {
		return FileInfo{}, err
	}
	var info FileInfo
	return info, decodeBody(resp, &info, "stat "+p)
}

// List lists the directory p.
func (c *Client) List(ctx context.Context, p string, opts ListOptions) (ListResult, error) {
	q := url.Values{QueryPath: {p}}
	if opts.Recursive {
		q.Set(QueryRecursive, "1")
	}
	if opts.Glob != "" {
		q.Set(QueryGlob, opts.Glob)
	}
	if opts.NoHidden {
		q.Set(QueryHidden, "0")
	}
	if opts.Limit != 0 {
		q.Set(QueryLimit, strconv.Itoa(opts.Limit))
	}
	resp, err := c.doStream(ctx, http.MethodGet, PathFilesList, q, nil, "")
	if err != nil {
		return ListResult{}, err
	}
	var res ListResult
	return res, decodeBody(resp, &res, "list "+p)
}

// Mkdir creates p and its missing parents (mkdir -p) with mode (0 =
// 0755), owned by the sandbox user. An existing directory is fine.
func (c *Client) Mkdir(ctx context.Context, p string, mode fs.FileMode) (FileInfo, error) {
	req := MkdirRequest{Path: p}
	if mode != 0 {
		req.Mode = FormatMode(mode)
	}
	return c.postInfo(ctx, PathFilesMkdir, req, "mkdir "+p)
}

// Move renames from to to. Without overwrite, an existing to is a 409.
func (c *Client) Move(ctx context.Context, from, to string, overwrite bool) (FileInfo, error) {
	return c.postInfo(ctx, PathFilesMove, MoveRequest{From: from, To: to, Overwrite: overwrite}, "move "+from)
}

func (c *Client) postInfo(ctx context.Context, p string, req any, what string) (FileInfo, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return FileInfo{}, fmt.Errorf("agent %s: encode request: %w", what, err)
	}
	resp, err := c.do(ctx, http.MethodPost, p, body)
	if err != nil {
		return FileInfo{}, err
	}
	var info FileInfo
	return info, decodeBody(resp, &info, what)
}

// Remove removes p; a non-empty directory needs recursive.
func (c *Client) Remove(ctx context.Context, p string, recursive bool) error {
	q := url.Values{QueryPath: {p}}
	if recursive {
		q.Set(QueryRecursive, "1")
	}
	resp, err := c.doStream(ctx, http.MethodDelete, PathFiles, q, nil, "")
	if err != nil {
		return err
	}
	drainClose(resp.Body)
	return nil
}

// UploadTar streams the tar (or gzip of a tar) r into the directory dir,
// which is created if missing. Entries belong to the sandbox user and keep
// their modes.
func (c *Client) UploadTar(ctx context.Context, dir string, r io.Reader) (TarResult, error) {
	resp, err := c.doStream(ctx, http.MethodPut, PathFilesTar, url.Values{QueryPath: {dir}}, r, ContentTypeTar)
	if err != nil {
		return TarResult{}, err
	}
	var res TarResult
	return res, decodeBody(resp, &res, "upload tar to "+dir)
}

// DownloadTar streams a tar of the file or directory p; its one top entry
// is named after p's last element. When the agent had to leave entries
// out (unreadable files), reading to the end gives a *TarProblems instead
// of io.EOF. The caller closes the reader.
func (c *Client) DownloadTar(ctx context.Context, p string) (io.ReadCloser, error) {
	resp, err := c.doStream(ctx, http.MethodGet, PathFilesTar, url.Values{QueryPath: {p}}, nil, "")
	if err != nil {
		return nil, err
	}
	return &tarDownload{resp: resp}, nil
}

// tarDownload reports the agent's trailer of problems at the end.
type tarDownload struct {
	resp *http.Response
}

func (d *tarDownload) Read(b []byte) (int, error) {
	n, err := d.resp.Body.Read(b)
	if errors.Is(err, io.EOF) {
		if v := d.resp.Trailer.Get(TrailerTarErrors); v != "" {
			var probs TarProblems
			if decodeHeaderJSON(v, &probs) != nil {
				probs = TarProblems{Count: 1, Problems: []string{"unreadable problem report " + strconv.Quote(v)}}
			}
			return n, &probs
		}
	}
	return n, err
}

func (d *tarDownload) Close() error { return d.resp.Body.Close() }

// doStream sends a request whose body (if any) is streamed and returns the
// 2xx response; any other answer becomes an *APIError.
func (c *Client) doStream(ctx context.Context, method, p string, q url.Values, body io.Reader, contentType string) (*http.Response, error) {
	u := c.base + p
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	what := method + " " + p
	if v := q.Get(QueryPath); v != "" {
		what += " " + strconv.Quote(v)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", what, err)
	}
	req.Header.Set(HeaderKey, c.key)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent %s: %w", what, err)
	}
	if resp.StatusCode/100 == 2 {
		return resp, nil
	}
	defer drainClose(resp.Body)
	return nil, fmt.Errorf("agent %s: %w", what, readAPIError(resp))
}

func decodeBody(resp *http.Response, v any, what string) error {
	defer drainClose(resp.Body)
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("agent %s: decode answer: %w", what, err)
	}
	return nil
}

// EncodeHeaderJSON renders v for a header or trailer: base64 of its JSON.
func EncodeHeaderJSON(v any) (string, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(raw), nil
}

func decodeHeaderJSON(s string, v any) error {
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, v)
}

func statHeader(h http.Header) (FileInfo, error) {
	var info FileInfo
	v := h.Get(HeaderFileStat)
	if v == "" {
		return info, fmt.Errorf("answer lacks the %s header", HeaderFileStat)
	}
	if err := decodeHeaderJSON(v, &info); err != nil {
		return info, fmt.Errorf("header %s: %w", HeaderFileStat, err)
	}
	return info, nil
}

// CopyIn copies the local file or directory src into the sandbox at dst,
// with the rules of docker cp: when dst is an existing directory, src is
// copied into it under its own name; otherwise src is copied as dst (whose
// parent must exist). A directory src ending in "/." copies its content
// only. Symlinks are copied as symlinks.
func (c *Client) CopyIn(ctx context.Context, src, dst string) (TarResult, error) {
	fi, err := os.Lstat(src)
	if err != nil {
		return TarResult{}, fmt.Errorf("copy %s: %w", src, err)
	}
	contentOnly := fi.IsDir() && (strings.HasSuffix(src, "/.") || src == ".")
	name := filepath.Base(src)
	if contentOnly {
		name = "."
	}
	dir, err := c.copyInTarget(ctx, fi.IsDir(), &name, dst)
	if err != nil {
		return TarResult{}, err
	}
	pr, pw := io.Pipe()
	type packed struct {
		probs *TarProblems
		err   error
	}
	done := make(chan packed, 1)
	go func() {
		_, probs, err := WriteTar(ctx, pw, src, TarOptions{Name: name})
		pw.CloseWithError(err)
		done <- packed{probs, err}
	}()
	res, err := c.UploadTar(ctx, dir, pr)
	pr.CloseWithError(errUploadEnded) // unblocks the writer if the upload ended early
	p := <-done
	switch {
	case p.err != nil && !errors.Is(p.err, errUploadEnded):
		return res, fmt.Errorf("copy %s: %w", src, p.err) // the cause of the upload's failure
	case err != nil:
		return res, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	case p.probs != nil:
		return res, fmt.Errorf("copy %s to %s: %w", src, dst, p.probs)
	}
	return res, nil
}

// errUploadEnded stops the local tar writer of CopyIn once the upload is over.
var errUploadEnded = errors.New("upload ended")

// copyInTarget decides where CopyIn extracts, and the name of the top entry.
func (c *Client) copyInTarget(ctx context.Context, srcIsDir bool, name *string, dst string) (string, error) {
	st, err := c.StatFollow(ctx, dst)
	switch {
	case err == nil && st.IsDir:
		return dst, nil
	case err == nil && srcIsDir:
		return "", fmt.Errorf("copy to %s: cannot copy a directory onto a file", dst)
	case err == nil:
		*name = path.Base(dst)
		return path.Dir(dst), nil
	case !isNotFound(err):
		return "", fmt.Errorf("copy to %s: %w", dst, err)
	case !srcIsDir && strings.HasSuffix(dst, "/"):
		return "", fmt.Errorf("copy to %s: no such directory", dst)
	}
	parent := path.Dir(strings.TrimSuffix(dst, "/"))
	if pst, err := c.StatFollow(ctx, parent); err != nil {
		return "", fmt.Errorf("copy to %s: parent directory: %w", dst, err)
	} else if !pst.IsDir {
		return "", fmt.Errorf("copy to %s: %s is not a directory", dst, parent)
	}
	*name = path.Base(dst)
	return parent, nil
}

// CopyOut copies the file or directory src of the sandbox to the local
// path dst, with the rules of CopyIn the other way round. Extraction is
// safe: no entry lands outside dst's directory, and no symlink is followed.
func (c *Client) CopyOut(ctx context.Context, src, dst string) (TarResult, error) {
	st, err := c.Stat(ctx, src)
	if err != nil {
		return TarResult{}, fmt.Errorf("copy %s: %w", src, err)
	}
	opts := ExtractOptions{}
	if st.IsDir && (strings.HasSuffix(src, "/.") || src == ".") {
		opts.TopName = "."
	}
	dir := dst
	lst, err := os.Stat(dst)
	switch {
	case err == nil && lst.IsDir():
	case err == nil && st.IsDir:
		return TarResult{}, fmt.Errorf("copy to %s: cannot copy a directory onto a file", dst)
	case err == nil:
		dir, opts.TopName = filepath.Dir(dst), filepath.Base(dst)
	case !errors.Is(err, fs.ErrNotExist):
		return TarResult{}, fmt.Errorf("copy to %s: %w", dst, err)
	case !st.IsDir && strings.HasSuffix(dst, "/"):
		return TarResult{}, fmt.Errorf("copy to %s: no such directory", dst)
	default:
		clean := filepath.Clean(dst)
		dir, opts.TopName = filepath.Dir(clean), filepath.Base(clean)
		if pst, err := os.Stat(dir); err != nil {
			return TarResult{}, fmt.Errorf("copy to %s: parent directory: %w", dst, err)
		} else if !pst.IsDir() {
			return TarResult{}, fmt.Errorf("copy to %s: %s is not a directory", dst, dir)
		}
	}
	rc, err := c.DownloadTar(ctx, src)
	if err != nil {
		return TarResult{}, fmt.Errorf("copy %s: %w", src, err)
	}
	defer rc.Close()
	res, err := ExtractTar(ctx, rc, dir, opts)
	if err != nil {
		return res, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	// The end of the stream carries the agent's report of left-out entries.
	if _, err := io.Copy(io.Discard, rc); err != nil {
		return res, fmt.Errorf("copy %s to %s: %w", src, dst, err)
	}
	return res, nil
}

func isNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}

// TarOptions tune WriteTar.
type TarOptions struct {
	// Name of the top entry; default the last element of the path. For a
	// directory, "." writes its content without a top entry.
	Name string
}

// maxProblems bounds the problems a TarProblems lists.
const maxProblems = 20

// copyBuf is the buffer of one file copy in WriteTar and ExtractTar.
const copyBuf = 256 << 10

// WriteTar writes a tar of the file or directory p to w, never following a
// symlink (it is archived as one); hard links within the tree are kept.
// Files are streamed, never held in memory. Entries it cannot read are
// left out and listed in the *TarProblems it returns (nil when there are
// none); fifos, sockets and devices are left out and counted as skipped.
// The error is for p itself or a failing w.
func WriteTar(ctx context.Context, w io.Writer, p string, opts TarOptions) (TarResult, *TarProblems, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return TarResult{}, nil, err
	}
	name := opts.Name
	if name == "" {
		name = filepath.Base(p)
	}
	if name != "." {
		if clean, err := CleanTarName(name); err != nil || clean == "" || strings.Contains(clean, "/") {
			return TarResult{}, nil, fmt.Errorf("tar of %s: top entry name %q is not one path element", p, name)
		}
	} else if !fi.IsDir() {
		return TarResult{}, nil, fmt.Errorf("tar of %s: name \".\" needs a directory", p)
	}
	tw := &tarWriter{
		ctx:   ctx,
		tw:    tar.NewWriter(w),
		buf:   make([]byte, copyBuf),
		links: map[[2]uint64]string{},
		res:   TarResult{Path: p},
	}
	if name == "." {
		err = tw.dirContent(p, "")
	} else {
		err = tw.entry(p, name, fi)
	}
	if err == nil {
		err = tw.tw.Close()
	}
	var probs *TarProblems
	if tw.probs.Count > 0 {
		probs = &tw.probs
	}
	return tw.res, probs, err
}

type tarWriter struct {
	ctx   context.Context
	tw    *tar.Writer
	buf   []byte
	links map[[2]uint64]string // dev, inode → name of the first entry
	res   TarResult
	probs TarProblems
}

// problem records an entry left out; the archive goes on.
func (t *tarWriter) problem(p string, err error) {
	t.probs.Count++
	if len(t.probs.Problems) < maxProblems {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		t.probs.Problems = append(t.probs.Problems, p+": "+err.Error())
	}
}

// entry archives the path p (described by fi) as name, and what is below it.
// Only a failing writer (or ctx) is an error.
func (t *tarWriter) entry(p, name string, fi fs.FileInfo) error {
	if err := t.ctx.Err(); err != nil {
		return err
	}
	// Truncated: the writer would round to the nearest second, maybe into
	// the future.
	hdr := &tar.Header{Name: name, Mode: int64(UnixMode(fi.Mode())), ModTime: fi.ModTime().Truncate(time.Second)}
	var dev, ino, nlink uint64
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		dev, ino, nlink = uint64(st.Dev), uint64(st.Ino), uint64(st.Nlink)
	}
	switch {
	case fi.IsDir():
		hdr.Typeflag, hdr.Name = tar.TypeDir, name+"/"
		if err := t.tw.WriteHeader(hdr); err != nil {
			return err
		}
		t.res.Dirs++
		return t.dirContent(p, name)
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			t.problem(p, err)
			return nil
		}
		hdr.Typeflag, hdr.Linkname = tar.TypeSymlink, target
		t.res.Symlinks++
		return t.tw.WriteHeader(hdr)
	case fi.Mode().IsRegular():
		if nlink > 1 {
			key := [2]uint64{dev, ino}
			if first, ok := t.links[key]; ok {
				hdr.Typeflag, hdr.Linkname = tar.TypeLink, first
				t.res.HardLinks++
				return t.tw.WriteHeader(hdr)
			}
			t.links[key] = name
		}
		return t.file(p, hdr)
	}
	t.res.Skipped++
	return nil
}

// file archives one regular file; it is opened before its header is
// written, so an unreadable file is left out whole.
func (t *tarWriter) file(p string, hdr *tar.Header) error {
	f, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.problem(p, err)
		return nil
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		if err == nil {
			err = errors.New("changed into a non-regular file while archiving")
		}
		t.problem(p, err)
		return nil
	}
	hdr.Typeflag, hdr.Size = tar.TypeReg, st.Size()
	if err := t.tw.WriteHeader(hdr); err != nil {
		return err
	}
	n, err := io.CopyBuffer(t.tw, io.LimitReader(f, hdr.Size), t.buf)
	t.res.Bytes += n
	if err != nil && !isReadError(err) {
		return err
	}
	if n < hdr.Size {
		// The file shrank (or a read failed): pad to the size announced.
		if err == nil {
			err = errors.New("file shrank while being archived")
		}
		t.problem(p, err)
		if _, err := io.CopyBuffer(t.tw, io.LimitReader(zeros{}, hdr.Size-n), t.buf); err != nil {
			return err
		}
	}
	t.res.Files++
	return nil
}

// isReadError tells a failure of the file read from one of the writer.
func isReadError(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && pe.Op == "read"
}

type zeros struct{}

func (zeros) Read(b []byte) (int, error) {
	clear(b)
	return len(b), nil
}

// dirContent archives what is in directory p, sorted by name, each as
// prefix/name.
func (t *tarWriter) dirContent(p, prefix string) error {
	d, err := os.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_DIRECTORY, 0)
	if err != nil {
		t.problem(p, err)
		return nil
	}
	ents, err := d.ReadDir(-1)
	d.Close()
	if err != nil {
		t.problem(p, err)
		return nil
	}
	slices.SortFunc(ents, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	for _, e := range ents {
		child := filepath.Join(p, e.Name())
		fi, err := e.Info()
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) { // removed meanwhile: nothing to archive
				t.problem(child, err)
			}
			continue
		}
		name := e.Name()
		if prefix != "" {
			name = prefix + "/" + name
		}
		if err := t.entry(child, name, fi); err != nil {
			return err
		}
	}
	return nil
}

// ExtractOptions tune ExtractTar.
type ExtractOptions struct {
	// TopName renames the archive's top element: every entry must then
	// begin with the same first element, which is replaced by TopName; "."
	// drops it, so its content lands in the directory itself.
	TopName string
}

// TarEntryError is a failure on one entry of an archive. Err wraps
// ErrUnsafeEntry, ErrBadArchive or the file system's error.
type TarEntryError struct {
	Entry string
	Err   error
}

func (e *TarEntryError) Error() string {
	if e.Entry == "" {
		return e.Err.Error()
	}
	return fmt.Sprintf("tar entry %q: %v", e.Entry, e.Err)
}

func (e *TarEntryError) Unwrap() error { return e.Err }

// gzipMagic starts every gzip stream.
var gzipMagic = []byte{0x1f, 0x8b}

// ExtractTar extracts the tar (or gzip of a tar) r into the directory
// dir, streaming file contents. It is safe against hostile archives:
// names are checked with CleanTarName, symlink targets with
// CheckLinkTarget and, at the end, by resolving every symlink the archive
// made (links that resolve outside dir are removed and reported), and no
// symlink is ever followed while extracting (every path element is opened
// with O_NOFOLLOW below dir), so nothing is written outside dir. Existing
// files and symlinks are replaced; an existing directory is kept, with its
// mode. Entries get the extracting process's uid and gid and the archive's
// modes and times. Fifos and devices are skipped. Extraction stops at the
// first bad entry; what came before it stays.
func ExtractTar(ctx context.Context, r io.Reader, dir string, opts ExtractOptions) (TarResult, error) {
	switch top := opts.TopName; {
	case top == "", top == ".":
	default:
		if clean, err := CleanTarName(top); err != nil || clean != top || strings.Contains(top, "/") {
			return TarResult{}, fmt.Errorf("extract: top name %q is not one path element", top)
		}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return TarResult{}, fmt.Errorf("extract into %s: %w", dir, err)
	}
	root, err := unix.Open(abs, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return TarResult{}, &fs.PathError{Op: "open", Path: abs, Err: err}
	}
	defer unix.Close(root)

	br := bufio.NewReaderSize(r, 64<<10)
	var src io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == gzipMagic[0] && magic[1] == gzipMagic[1] {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return TarResult{}, &TarEntryError{Err: fmt.Errorf("%w: gzip: %v", ErrBadArchive, err)}
		}
		defer zr.Close()
		src = zr
	}
	x := &extractor{
		ctx:      ctx,
		root:     root,
		rootPath: abs,
		top:      opts.TopName,
		parentFD: -1,
		buf:      make([]byte, copyBuf),
		res:      TarResult{Path: abs},
	}
	defer x.closeParent()
	err = x.run(tar.NewReader(src))
	x.closeParent()
	// A link that leads out is the root cause of any error it led to.
	if ferr := x.finish(); ferr != nil && (err == nil || errors.Is(ferr, ErrUnsafeEntry)) {
		err = ferr
	}
	return x.res, err
}

type dirFix struct {
	rel   string
	mode  uint32
	mtime time.Time
}

type extractor struct {
	ctx       context.Context
	root      int
	rootPath  string
	top       string
	firstTop  string
	parentRel string
	parentFD  int // directory of the last entry, kept open: entries come grouped
	dirs      []dirFix
	links     []string
	buf       []byte
	res       TarResult
}

func (x *extractor) run(tr *tar.Reader) error {
	for {
		if err := x.ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, tar.ErrHeader) || errors.Is(err, tar.ErrFieldTooLong) || errors.Is(err, tar.ErrInsecurePath) {
				return &TarEntryError{Err: fmt.Errorf("%w: %v", ErrBadArchive, err)}
			}
			return &TarEntryError{Err: fmt.Errorf("read archive: %w", err)}
		}
		if err := x.entry(tr, hdr); err != nil {
			return &TarEntryError{Entry: hdr.Name, Err: err}
		}
	}
}

// mapName cleans an entry name and applies TopName; "" is the root.
func (x *extractor) mapName(raw string) (string, error) {
	name, err := CleanTarName(raw)
	if err != nil || x.top == "" || name == "" {
		return name, err
	}
	first, rest, _ := strings.Cut(name, "/")
	if x.firstTop == "" {
		x.firstTop = first
	} else if first != x.firstTop {
		return "", fmt.Errorf("%w: %q is not below the archive's top element %q", ErrUnsafeEntry, name, x.firstTop)
	}
	switch {
	case x.top == ".":
		return rest, nil
	case rest == "":
		return x.top, nil
	}
	return x.top + "/" + rest, nil
}

func (x *extractor) entry(tr *tar.Reader, hdr *tar.Header) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader, tar.TypeXHeader, tar.TypeGNULongName, tar.TypeGNULongLink:
		return nil // metadata, already applied by the reader
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		x.res.Skipped++
		return nil
	}
	name, err := x.mapName(hdr.Name)
	if err != nil {
		return err
	}
	mode := uint32(hdr.Mode) & 0o7777
	switch hdr.Typeflag {
	case tar.TypeDir:
		return x.dir(name, mode, hdr.ModTime)
	case tar.TypeReg, tar.TypeRegA, tar.TypeCont:
		if name == "" {
			return fmt.Errorf("%w: a file cannot be the archive's root", ErrUnsafeEntry)
		}
		return x.file(tr, name, mode, hdr.ModTime)
	case tar.TypeSymlink:
		if name == "" {
			return fmt.Errorf("%w: a symlink cannot be the archive's root", ErrUnsafeEntry)
		}
		return x.symlink(name, hdr.Linkname, hdr.ModTime)
	case tar.TypeLink:
		if name == "" {
			return fmt.Errorf("%w: a hard link cannot be the archive's root", ErrUnsafeEntry)
		}
		return x.hardlink(name, hdr.Linkname)
	}
	return fmt.Errorf("%w: unsupported entry type %q", ErrBadArchive, hdr.Typeflag)
}

func (x *extractor) dir(name string, mode uint32, mtime time.Time) error {
	if name == "" {
		return nil // the root: exists, and keeps its mode
	}
	x.res.Dirs++
	pfd, base, err := x.parent(name)
	if err != nil {
		return err
	}
	// Private until the end, when its own mode is set (a read-only
	// directory must still take its content).
	err = unix.Mkdirat(pfd, base, 0o700)
	if err == nil {
		x.dirs = append(x.dirs, dirFix{rel: name, mode: mode, mtime: mtime})
		return nil
	}
	if !errors.Is(err, unix.EEXIST) {
		return &fs.PathError{Op: "mkdir", Path: name, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFDIR {
		return &fs.PathError{Op: "mkdir", Path: name, Err: unix.ENOTDIR}
	}
	return nil
}

// writerOnly hides os.File's ReadFrom, so io.CopyBuffer uses our buffer.
type writerOnly struct{ io.Writer }

func (x *extractor) file(r io.Reader, name string, mode uint32, mtime time.Time) error {
	pfd, base, err := x.parent(name)
	if err != nil {
		return err
	}
	fd, err := x.create(pfd, base, name, func() (int, error) {
		return unix.Openat(pfd, base, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	})
	if err != nil {
		return err
	}
	f := os.NewFile(uintptr(fd), name)
	n, err := io.CopyBuffer(writerOnly{f}, r, x.buf)
	x.res.Bytes += n
	if err != nil {
		f.Close()
		_ = unix.Unlinkat(pfd, base, 0) // no half file left behind
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w: archive ends inside the file", ErrBadArchive)
		}
		return err
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		f.Close()
		return &fs.PathError{Op: "chmod", Path: name, Err: err}
	}
	if err := f.Close(); err != nil {
		return err
	}
	x.res.Files++
	return x.setTime(pfd, base, mtime)
}

// create runs mk, which creates base in pfd exclusively; when base exists
// and is not a directory, it is removed first (never followed).
func (x *extractor) create(pfd int, base, name string, mk func() (int, error)) (int, error) {
	fd, err := mk()
	if errors.Is(err, unix.EEXIST) {
		if err := removeNonDir(pfd, base, name); err != nil {
			return -1, err
		}
		fd, err = mk()
	}
	if err != nil {
		return -1, &fs.PathError{Op: "create", Path: name, Err: err}
	}
	return fd, nil
}

func removeNonDir(pfd int, base, name string) error {
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	if uint32(st.Mode)&unix.S_IFMT == unix.S_IFDIR {
		return &fs.PathError{Op: "replace", Path: name, Err: unix.EISDIR}
	}
	if err := unix.Unlinkat(pfd, base, 0); err != nil {
		return &fs.PathError{Op: "replace", Path: name, Err: err}
	}
	return nil
}

func (x *extractor) symlink(name, target string, mtime time.Time) error {
	if err := CheckLinkTarget(x.rootPath, name, target); err != nil {
		return err
	}
	pfd, base, err := x.parent(name)
	if err != nil {
		return err
	}
	if _, err := x.create(pfd, base, name, func() (int, error) {
		return 0, unix.Symlinkat(target, pfd, base)
	}); err != nil {
		return err
	}
	x.links = append(x.links, name)
	x.res.Symlinks++
	return x.setTime(pfd, base, mtime)
}

func (x *extractor) hardlink(name, linkname string) error {
	target, err := x.mapName(linkname)
	if err != nil {
		return err
	}
	if target == "" {
		return fmt.Errorf("%w: hard link to the archive's root", ErrUnsafeEntry)
	}
	tdir, tbase := splitRel(target)
	tfd, err := x.openDir(tdir, false)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	pfd, base, err := x.parent(name)
	if err != nil {
		return err
	}
	if _, err := x.create(pfd, base, name, func() (int, error) {
		return 0, unix.Linkat(tfd, tbase, pfd, base, 0)
	}); err != nil {
		return err
	}
	x.res.HardLinks++
	return nil
}

func (x *extractor) setTime(pfd int, base string, mtime time.Time) error {
	if mtime.IsZero() {
		return nil
	}
	ts := unix.NsecToTimespec(mtime.UnixNano())
	if err := unix.UtimesNanoAt(pfd, base, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "set times", Path: base, Err: err}
	}
	return nil
}

func splitRel(rel string) (dir, base string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// parent returns an open directory that holds rel (made as needed) and
// rel's last element. The descriptor belongs to x.
func (x *extractor) parent(rel string) (int, string, error) {
	dir, base := splitRel(rel)
	if x.parentFD >= 0 && dir == x.parentRel {
		return x.parentFD, base, nil
	}
	fd, err := x.openDir(dir, true)
	if err != nil {
		return -1, "", err
	}
	x.closeParent()
	x.parentRel, x.parentFD = dir, fd
	return fd, base, nil
}

func (x *extractor) closeParent() {
	if x.parentFD >= 0 {
		unix.Close(x.parentFD)
		x.parentFD = -1
	}
}

// openDir opens root/rel, one element at a time with O_NOFOLLOW, so a
// symlink anywhere on the way is an error rather than a way out; with
// create, missing directories are made (0755).
func (x *extractor) openDir(rel string, create bool) (int, error) {
	cur, err := unix.Dup(x.root)
	if err != nil {
		return -1, err
	}
	if rel == "" {
		return cur, nil
	}
	done := 0
	for elem := range strings.SplitSeq(rel, "/") {
		done += len(elem) + 1
		at := rel[:done-1]
		next, err := unix.Openat(cur, elem, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(cur, elem, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat(cur, elem, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
				if err == nil {
					x.res.Dirs++
					_ = unix.Fchmod(next, 0o755) // exact, whatever the umask
				}
			}
		}
		unix.Close(cur)
		if errors.Is(err, unix.ELOOP) {
			err = unix.ENOTDIR // a symlink where a directory must be
		}
		if err != nil {
			return -1, &fs.PathError{Op: "open", Path: at, Err: err}
		}
		cur = next
	}
	return cur, nil
}

// finish sets the modes and times of the directories made, deepest first,
// then removes symlinks that resolve outside the root.
func (x *extractor) finish() error {
	var first error
	for _, d := range slices.Backward(x.dirs) {
		if err := x.fixDir(d); err != nil && first == nil {
			first = &TarEntryError{Entry: d.rel, Err: err}
		}
	}
	for _, l := range x.links {
		esc, err := x.escapes(l)
		if err != nil || esc {
			pdir, base := splitRel(l)
			if pfd, oerr := x.openDir(pdir, false); oerr == nil {
				_ = unix.Unlinkat(pfd, base, 0)
				unix.Close(pfd)
			}
			x.res.Symlinks--
			if first == nil {
				if err == nil {
					err = fmt.Errorf("%w: symlink resolves outside %s (removed)", ErrUnsafeEntry, x.rootPath)
				}
				first = &TarEntryError{Entry: l, Err: err}
			}
		}
	}
	return first
}

func (x *extractor) fixDir(d dirFix) error {
	fd, err := x.openDir(d.rel, false)
	if err != nil {
		return err
	}
	err = unix.Fchmod(fd, d.mode)
	unix.Close(fd)
	if err != nil {
		return &fs.PathError{Op: "chmod", Path: d.rel, Err: err}
	}
	pdir, base := splitRel(d.rel)
	pfd, err := x.openDir(pdir, false)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	return x.setTime(pfd, base, d.mtime)
}

// maxLinkHops bounds symlink resolution, as the kernel's ELOOP does.
const maxLinkHops = 40

// escapes resolves the symlink rel on the file system, as the kernel
// would, and reports whether the resolution leaves the root (or loops).
func (x *extractor) escapes(rel string) (bool, error) {
	dir, base := splitRel(rel)
	var stack []string
	if dir != "" {
		stack = strings.Split(dir, "/")
	}
	pending := []string{base}
	for hops := 0; len(pending) > 0; {
		elem := pending[0]
		pending = pending[1:]
		switch elem {
		case "", ".":
			continue
		case "..":
			if len(stack) == 0 {
				return true, nil
			}
			stack = stack[:len(stack)-1]
			continue
		}
		stack = append(stack, elem)
		at := strings.Join(stack, "/")
		var st unix.Stat_t
		err := unix.Fstatat(x.root, at, &st, unix.AT_SYMLINK_NOFOLLOW)
		if err != nil || uint32(st.Mode)&unix.S_IFMT != unix.S_IFLNK {
			continue // a real file or directory, or nothing (the rest is then lexical)
		}
		if hops++; hops > maxLinkHops {
			return true, nil
		}
		buf := make([]byte, unix.PathMax)
		n, err := unix.Readlinkat(x.root, at, buf)
		if err != nil {
			return true, err
		}
		target := string(buf[:n])
		stack = stack[:len(stack)-1]
		if path.IsAbs(target) {
			clean := path.Clean(target)
			if !within(x.rootPath, clean) {
				return true, nil
			}
			stack = nil
			target = strings.TrimPrefix(strings.TrimPrefix(clean, x.rootPath), "/")
		}
		pending = append(strings.Split(target, "/"), pending...)
	}
	return false, nil
}
