// Package mounts turns the volume and tmpfs specs a user writes into the
// mounts of a sandbox, and manages the host dirs of overlay mounts.
//
// A volume spec is OpenHands' sandbox.volumes syntax, a comma-separated list
// of "host:container[:mode]" with mode rw (the default), ro or overlay:
//
//	/home/me/src:/workspace                bind mount, read-write
//	/data:/data:ro                         bind mount, read-only
//	cache:/cache                           named Docker volume (created if absent)
//	/home/me/repo:/workspace/repo:overlay  copy-on-write over a host dir
//
// Unlike OpenHands, every bad item is reported (none is dropped), overlays
// need no extra setting, and the overlay dirs of a sandbox are removed with it.
//
// An overlay mount is an anonymous volume of Docker's local driver whose
// options make the daemon mount a kernel overlay: the host dir is the
// read-only lower layer and a per-sandbox upper dir receives every write, so
// nothing the sandbox does reaches the host dir. Overlays manages those
// upper/work dirs: <Root>/<sandbox id>/<mount index>/{upper,work}.
package mounts

import (
	"fmt"
	"strconv"
	"strings"
)

// Kind is the kind of a mount.
type Kind string

// The kinds.
const (
	KindBind    Kind = "bind"    // a host path
	KindVolume  Kind = "volume"  // a named Docker volume
	KindOverlay Kind = "overlay" // a copy-on-write layer over a host dir
	KindTmpfs   Kind = "tmpfs"   // memory-backed, gone when the sandbox stops
)

// Mount is one parsed mount of a sandbox.
type Mount struct {
	Kind      Kind
	Source    string // absolute, clean host path (bind, overlay lower dir) or volume name; "" for tmpfs
	Target    string // absolute, clean container path, never "/"
	ReadOnly  bool
	TmpfsSize int64  // bytes, tmpfs only (0 = Docker default)
	TmpfsMode uint32 // permission bits, e.g. 01777, tmpfs only (0 = Docker default)
	Index     int    // position in the spec list, from 0 (overlay dirs are per index)
}

// String writes m back in the syntax it was parsed from: "host:container[:mode]"
// for volumes, "PATH[:size=N][,mode=M][,ro]" for tmpfs. Parsing it again
// gives m back (but for Index).
func (m Mount) String() string {
	switch m.Kind {
	case KindTmpfs:
		var opts []string
		if m.TmpfsSize != 0 {
			opts = append(opts, "size="+strconv.FormatInt(m.TmpfsSize, 10))
		}
		if m.TmpfsMode != 0 {
			opts = append(opts, "mode="+strconv.FormatUint(uint64(m.TmpfsMode), 8))
		}
		if m.ReadOnly {
			opts = append(opts, "ro")
		}
		if len(opts) == 0 {
			return m.Target
		}
		return m.Target + ":" + strings.Join(opts, ",")
	case KindOverlay:
		return m.Source + ":" + m.Target + ":overlay"
	default:
		if m.ReadOnly {
			return m.Source + ":" + m.Target + ":ro"
		}
		return m.Source + ":" + m.Target
	}
}

// maxShown bounds how much of an input an error quotes.
const maxShown = 120

// quote renders user input for an error message: valid UTF-8, Go-quoted,
// cut to maxShown bytes so a hostile input stays cheap to print.
func quote(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) > maxShown {
		cut := maxShown
		for cut > 0 && !utf8Start(s[cut]) {
			cut--
		}
		return fmt.Sprintf("%q...", s[:cut])
	}
	return fmt.Sprintf("%q", s)
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }
