package agent

import (
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/berth-dev/berth/internal/agentapi"
)

// handleDownloadTar streams a tar of a file or a directory (default the
// workdir). Its one top entry is named after the path's last element, so a
// single file gives a tar of exactly that file. Everything is read as the
// user; entries the user cannot read are left out and reported in the
// TrailerTarErrors trailer, never silently.
func (s *Server) handleDownloadTar(w http.ResponseWriter, r *http.Request) {
	q, e := parseFileQuery(r, agentapi.QueryPath)
	if e != nil {
		writeError(w, e)
		return
	}
	p, e := q.path(s.opts.Workdir, s.opts.Workdir)
	if e != nil {
		writeError(w, e)
		return
	}
	var pre *apiError
	err := s.asUser(func() error {
		info, e := s.checkTarRoot(p)
		if e != nil {
			pre = e
			return nil
		}
		name := filepath.Base(p)
		if p == "/" {
			name = "." // the content of /, without a top entry
		}
		h := w.Header()
		setStatHeaders(h, info)
		h.Set("Content-Type", agentapi.ContentTypeTar)
		h.Set("Trailer", agentapi.TrailerTarErrors)
		w.WriteHeader(http.StatusOK)
		if r.Method == http.MethodHead {
			return nil
		}
		res, probs, err := agentapi.WriteTar(r.Context(), w, p, agentapi.TarOptions{Name: name})
		if probs != nil {
			if enc, err := agentapi.EncodeHeaderJSON(probs); err == nil {
				h.Set(agentapi.TrailerTarErrors, enc)
			}
			s.log.Warn("tar download left entries out", "path", p, "count", probs.Count, "first", probs.Problems[0])
		}
		if err != nil {
			s.log.Debug("tar download ended early", "path", p, "err", err) // the client went away
			return nil
		}
		s.log.Info("tar download", "path", p, "files", res.Files, "dirs", res.Dirs, "bytes", res.Bytes)
		return nil
	})
	if err != nil {
		pre = s.fsError("download", p, err)
	}
	if pre != nil {
		writeError(w, pre)
	}
}

// checkTarRoot checks, as the user, that p can be archived, so that the
// usual mistakes get their status before the stream starts.
func (s *Server) checkTarRoot(p string) (agentapi.FileInfo, *apiError) {
	info, err := lstatInfo(p, false)
	if err != nil {
		return info, s.fsError("download", p, err)
	}
	switch info.Type {
	case agentapi.FileTypeDir, agentapi.FileTypeFile:
		f, err := os.Open(p)
		if err != nil {
			return info, s.fsError("download", p, err)
		}
		f.Close()
	case agentapi.FileTypeOther:
		return info, badRequest("download %s: is not a regular file, directory or symlink", p)
	}
	return info, nil
}

// handleUploadTar extracts a tar (or gzip of a tar: detected by its magic
// bytes) into a directory, made if missing (default the workdir). It is
// streamed: no file is held in memory. The extraction runs as the user,
// so entries belong to the user, and is safe against hostile archives (see
// agentapi.ExtractTar): nothing lands outside the directory.
func (s *Server) handleUploadTar(w http.ResponseWriter, r *http.Request) {
	q, e := parseFileQuery(r, agentapi.QueryPath)
	if e != nil {
		writeError(w, e)
		return
	}
	p, e := q.path(s.opts.Workdir, s.opts.Workdir)
	if e != nil {
		writeError(w, e)
		return
	}
	switch enc := strings.ToLower(r.Header.Get("Content-Encoding")); enc {
	case "", "identity", "gzip", "x-gzip":
	default:
		writeError(w, newAPIError(http.StatusUnsupportedMediaType, agentapi.CodeBadRequest,
			"upload to %s: Content-Encoding %q is not supported; send a tar, or a gzip of one", p, enc))
		return
	}
	var (
		res agentapi.TarResult
		ext error
	)
	err := s.asUser(func() error {
		if _, err := mkdirAll(p, 0o755); err != nil {
			return err
		}
		res, ext = agentapi.ExtractTar(r.Context(), r.Body, p, agentapi.ExtractOptions{})
		return nil
	})
	if err != nil {
		writeError(w, s.fsError("upload to", p, err))
		return
	}
	if ext != nil {
		s.log.Info("tar upload failed", "path", p, "err", ext, "files", res.Files, "bytes", res.Bytes)
		writeError(w, s.extractError(p, ext))
		return
	}
	s.log.Info("tar upload", "path", p, "files", res.Files, "dirs", res.Dirs, "bytes", res.Bytes)
	writeJSON(w, http.StatusOK, res)
}

// extractError turns a failed extraction into the answer: a hostile or
// broken archive is a 400 naming the entry, a file system error gets its
// usual status with the entry's full path.
func (s *Server) extractError(dir string, err error) *apiError {
	switch {
	case errors.Is(err, agentapi.ErrUnsafeEntry), errors.Is(err, agentapi.ErrBadArchive):
		return badRequest("upload to %s: %v", dir, err)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		full := filepath.Join(dir, pe.Path)
		if filepath.IsAbs(pe.Path) {
			full = pe.Path
		}
		return s.fsError("upload: "+pe.Op, full, &fs.PathError{Op: pe.Op, Path: full, Err: pe.Err})
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return s.fsError("upload to", dir, err)
	}
	// What is left is reading the body: the client went away, or sent a
	// broken stream.
	return badRequest("upload to %s: reading the archive: %v", dir, err)
}
