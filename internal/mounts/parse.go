package mounts

import (
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/berth-dev/berth/internal/units"
)

const volumeSyntax = "host:container[:mode]"

// ParseVolumes parses sandbox.volumes (or a -v value in the same syntax): a
// comma-separated list of "host:container[:mode]" with mode rw (default), ro
// or overlay. Spaces around the commas are ignored; "" means no mounts.
//
// An absolute host path is a bind mount; a relative one is the name of a
// Docker volume ([a-zA-Z0-9][a-zA-Z0-9_.-]+, at least 2 characters, as
// Docker requires), created by Docker if absent. An overlay needs an absolute
// host path. Container paths must be absolute, are cleaned, must not be "/"
// and must not repeat. Every bad item gives an error quoting it; the errors
// are joined, and nothing is dropped.
func ParseVolumes(spec string) ([]Mount, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	return ParseVolumeList(strings.Split(spec, ","))
}

// ParseVolumeList is ParseVolumes over items already split, one mount each
// (repeated -v flags): an item is not split on commas, and item i gets
// Index i. Surrounding spaces are ignored; an empty item is an error.
func ParseVolumeList(items []string) ([]Mount, error) {
	var (
		ms   []Mount
		errs []error
		seen = map[string]int{} // container path → index of the item mounting it
	)
	for i, item := range items {
		m, reason := parseVolume(strings.TrimSpace(item), i)
		if reason == "" {
			if prev, dup := seen[m.Target]; dup {
				reason = fmt.Sprintf("container path %s is already mounted by item %d %s",
					quote(m.Target), prev+1, quote(strings.TrimSpace(items[prev])))
			}
		}
		if reason != "" {
			errs = append(errs, fmt.Errorf("volume item %d %s: %s", i+1, quote(item), reason))
			continue
		}
		seen[m.Target] = i
		ms = append(ms, m)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return ms, nil
}

// parseVolume parses one trimmed item, or says what is wrong with it.
func parseVolume(item string, index int) (Mount, string) {
	if item == "" {
		return Mount{}, "is empty (a stray comma?)"
	}
	parts := strings.Split(item, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return Mount{}, fmt.Sprintf("has %d colon-separated parts, want 2 or 3 (%s)", len(parts), volumeSyntax)
	}
	host, target, mode := parts[0], parts[1], "rw"
	if len(parts) == 3 {
		mode = parts[2]
		if mode == "" {
			return Mount{}, "mode is empty (want rw, ro or overlay)"
		}
	}
	if host == "" {
		return Mount{}, fmt.Sprintf("host path is empty (%s)", volumeSyntax)
	}
	for _, p := range [][2]string{{"host path", host}, {"container path", target}, {"mode", mode}} {
		if spaced(p[1]) {
			return Mount{}, fmt.Sprintf("%s %s has white space at an end (a typo?)", p[0], quote(p[1]))
		}
	}
	target, reason := containerPath(target)
	if reason != "" {
		if host == "volume" && len(parts) == 3 && !strings.HasPrefix(parts[1], "/") {
			reason += ` (OpenHands' "volume:NAME:PATH" form is not supported: write "NAME:PATH")`
		}
		return Mount{}, reason
	}
	m := Mount{Target: target, Index: index}
	switch mode {
	case "rw":
	case "ro":
		m.ReadOnly = true
	case "overlay":
		m.Kind = KindOverlay
	default:
		return Mount{}, fmt.Sprintf("unknown mode %s (want rw, ro or overlay)", quote(mode))
	}
	switch {
	case path.IsAbs(host):
		m.Source = path.Clean(host)
		if spaced(m.Source) {
			return Mount{}, fmt.Sprintf("host path %s has white space at an end (a typo?)", quote(host))
		}
		if m.Kind == "" {
			m.Kind = KindBind
		}
	case m.Kind == KindOverlay:
		return Mount{}, fmt.Sprintf("an overlay needs an absolute host path, got %s", quote(host))
	case !validVolumeName(host):
		return Mount{}, fmt.Sprintf("volume name %s is invalid: a relative host path names a Docker volume, "+
			"which must match [a-zA-Z0-9][a-zA-Z0-9_.-]+ (2 characters or more); "+
			"for a bind mount, write an absolute host path", quote(host))
	default:
		m.Kind, m.Source = KindVolume, host
	}
	if m.Kind == KindOverlay && strings.ContainsAny(m.Source, `,\`) {
		return Mount{}, fmt.Sprintf(`overlay host path %s contains "," or "\": the kernel's overlay options cannot carry them`, quote(m.Source))
	}
	return m, ""
}

// containerPath cleans an absolute container path, or says what is wrong.
func containerPath(p string) (string, string) {
	switch {
	case p == "":
		return "", "container path is empty"
	case !path.IsAbs(p):
		return "", fmt.Sprintf("container path %s is not absolute", quote(p))
	}
	c := path.Clean(p)
	if spaced(c) {
		return "", fmt.Sprintf("container path %s has white space at an end (a typo?)", quote(p))
	}
	if c == "/" {
		return "", fmt.Sprintf("container path %s is the container's root, which cannot be mounted over", quote(p))
	}
	return c, ""
}

// spaced reports whether s starts or ends with white space.
func spaced(s string) bool { return strings.TrimSpace(s) != s }

// validVolumeName reports whether s is a name Docker's local volume driver
// accepts: ^[a-zA-Z0-9][a-zA-Z0-9_.-]+$.
func validVolumeName(s string) bool {
	if len(s) < 2 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
		if !alnum && (i == 0 || c != '_' && c != '.' && c != '-') {
			return false
		}
	}
	return true
}

const tmpfsOptions = "size=SIZE, mode=OCTAL, rw, ro"

// ParseTmpfs parses a --tmpfs value: "PATH", then options after a ':' (or a
// ','), separated by commas: size=SIZE (64m, 1g, 512k, bytes; see
// units.ParseSize), mode=OCTAL (1777), rw, ro. For example
// "/tmp:size=64m,mode=1777" or "/run,mode=755". The returned Mount has
// Kind KindTmpfs and Index 0. All problems are reported, quoting spec.
func ParseTmpfs(spec string) (Mount, error) {
	s := strings.TrimSpace(spec)
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("tmpfs %s: %s", quote(spec), fmt.Sprintf(format, args...)))
	}
	if s == "" {
		bad("is empty (want PATH[:%s])", tmpfsOptions)
		return Mount{}, errors.Join(errs...)
	}
	p, opts, hasOpts := s, "", false
	if i := strings.IndexAny(s, ":,"); i >= 0 {
		p, opts, hasOpts = s[:i], s[i+1:], true
	}
	m := Mount{Kind: KindTmpfs}
	target, reason := containerPath(p)
	if reason != "" {
		bad("%s", reason)
	}
	m.Target = target
	if hasOpts {
		seen := map[string]string{}
		for _, opt := range strings.Split(opts, ",") {
			opt = strings.TrimSpace(opt)
			key, val, isKV := strings.Cut(opt, "=")
			if !isKV && (opt == "rw" || opt == "ro") {
				key = "rw/ro"
			}
			if prev, dup := seen[key]; dup && opt != "" {
				bad("option %s clashes with earlier %s: give it once", quote(opt), quote(prev))
				continue
			}
			seen[key] = opt
			switch {
			case opt == "":
				bad("has an empty option (a stray ':' or ','?)")
			case opt == "rw":
			case opt == "ro":
				m.ReadOnly = true
			case isKV && key == "size":
				n, err := units.ParseSize(val)
				switch {
				case err != nil:
					bad("%v", err)
				case n == 0:
					bad("size %s is 0: leave size out for Docker's default", quote(val))
				default:
					m.TmpfsSize = n
				}
			case isKV && key == "mode":
				n, err := strconv.ParseUint(val, 8, 32)
				switch {
				case err != nil || n > 0o7777:
					bad("mode %s is not an octal permission mode between 1 and 7777", quote(val))
				case n == 0:
					bad("mode %s would leave the tmpfs inaccessible; leave mode out for Docker's default (1777)", quote(val))
				default:
					m.TmpfsMode = uint32(n)
				}
			default:
				bad("unknown option %s (supported: %s)", quote(opt), tmpfsOptions)
			}
		}
	}
	if len(errs) > 0 {
		return Mount{}, errors.Join(errs...)
	}
	return m, nil
}
