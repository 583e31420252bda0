package security

import (
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf8"
)

// hole stands for a part of a word whose value is not known statically (an
// unset variable, a command substitution, arithmetic). It is a private-use
// rune, so it never equals a literal pattern character; a `*` or `?` in a
// pattern matches it like any other character.
const hole = "\uE000"

// globMatch reports whether s matches the shell-style pattern p, in which `*`
// matches any string (slashes included), `?` any one character, `[...]` a
// character class, and `\` escapes the next character. It runs in
// O(len(p)*len(s)) time.
func globMatch(p, s string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(s) {
		if pi < len(p) {
			switch p[pi] {
			case '*':
				starP, starS = pi, si
				pi++
				continue
			case '?':
				_, n := decodeRune(s[si:])
				pi++
				si += n
				continue
			case '[':
				if ok, plen, slen := matchClass(p[pi:], s[si:]); plen > 0 {
					if ok {
						pi += plen
						si += slen
						continue
					}
					break
				}
				if s[si] == '[' {
					pi++
					si++
					continue
				}
			case '\\':
				if pi+1 < len(p) && p[pi+1] == s[si] {
					pi += 2
					si++
					continue
				}
			default:
				if p[pi] == s[si] {
					pi++
					si++
					continue
				}
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		si = starS
		pi = starP + 1
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// matchClass matches the class at the start of p against the first rune of
// s. plen is 0 when p does not start a well-formed class.
func matchClass(p, s string) (ok bool, plen, slen int) {
	end := 1
	if end < len(p) && (p[end] == '!' || p[end] == '^') {
		end++
	}
	if end < len(p) && p[end] == ']' {
		end++
	}
	for end < len(p) && p[end] != ']' {
		if p[end] == '\\' {
			end++
		}
		end++
	}
	if end >= len(p) {
		return false, 0, 0
	}
	r, n := decodeRune(s)
	m, err := path.Match(goGlob(p[:end+1]), string(r))
	if err != nil {
		return false, 0, 0
	}
	return m, end + 1, n
}

func decodeRune(s string) (rune, int) { return utf8.DecodeRuneInString(s) }

// anyGlob reports whether s matches one of the patterns.
func anyGlob(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}

// hasMeta reports whether s contains an unescaped glob metacharacter.
func hasMeta(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// unescapeGlob removes the backslashes of a pattern without metacharacters.
func unescapeGlob(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// checkGlob validates a shell-style pattern.
func checkGlob(p string) error {
	if p == "" {
		return errors.New("empty pattern")
	}
	if _, err := path.Match(goGlob(p), ""); err != nil {
		return fmt.Errorf("bad pattern %q", p)
	}
	return nil
}

// A pathPattern is a compiled path glob: a root ("/" for absolute paths,
// "~" for the home directory, "" for "**/..." patterns that match under any
// root) and its segments, where "**" matches zero or more segments.
type pathPattern struct {
	root string
	segs []string
}

// compilePath compiles a path pattern such as "/", "/etc/**", "~/.ssh/id_*"
// or "**/.netrc".
func compilePath(p string) (pathPattern, error) {
	p = goGlob(p)
	if p == "" {
		return pathPattern{}, errors.New("empty pattern")
	}
	if _, err := path.Match(p, ""); err != nil {
		return pathPattern{}, fmt.Errorf("bad pattern %q", p)
	}
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		return pathPattern{root: "~", segs: splitSegs(p[1:])}, nil
	case strings.HasPrefix(p, "/"):
		root, segs := homeAlias("/", splitSegs(p))
		return pathPattern{root: root, segs: segs}, nil
	case p == "**" || strings.HasPrefix(p, "**/"):
		return pathPattern{root: "", segs: splitSegs(p)}, nil
	}
	return pathPattern{}, fmt.Errorf("pattern %q must start with \"/\", \"~\" or \"**/\"", p)
}

// splitSegs cleans p as an absolute path and splits it into segments; "/"
// gives none. Cleaning keeps glob characters as they are.
func splitSegs(p string) []string {
	c := path.Clean("/" + p)
	if c == "/" {
		return nil
	}
	return strings.Split(c[1:], "/")
}

// homeAlias rewrites /root/... and /home/USER/... to the home root "~", so
// that "~/.ssh/id_*" also covers /root/.ssh/id_rsa and /home/u/.ssh/id_rsa.
func homeAlias(root string, segs []string) (string, []string) {
	if root != "/" || len(segs) == 0 {
		return root, segs
	}
	if segs[0] == "root" {
		return "~", segs[1:]
	}
	if segs[0] == "home" && len(segs) >= 2 && segs[1] != "**" {
		return "~", segs[2:]
	}
	return root, segs
}

// maxSegs bounds the segments of a subject path that take part in matching.
const maxSegs = 128

// subject is a normalised path that a command touches: root is "/", "~",
// or "." for a path relative to an unknown directory.
type subject struct {
	root string
	segs []string
}

// resolvePath normalises a path word against the working directory cwd
// ("" when unknown): it resolves relative paths, cleans "." and "..",
// and maps home directories to "~".
func resolvePath(p, cwd string) (subject, bool) {
	if p == "" {
		return subject{}, false
	}
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		return homeSubject(p[1:]), true
	case strings.HasPrefix(p, "/"):
		root, segs := homeAlias("/", splitSegs(p))
		return subject{root: root, segs: capSegs(segs)}, true
	case cwd != "":
		return resolvePath(strings.TrimSuffix(cwd, "/")+"/"+p, "")
	}
	c := path.Clean(p)
	if c == "." {
		return subject{root: "."}, true
	}
	return subject{root: ".", segs: capSegs(strings.Split(c, "/"))}, true
}

// homeSubject normalises the part of a path after "~". A path that climbs
// out of the home directory ("~/..") is taken as the root directory, which
// it is for root (home /root) and nearly is for anyone else.
func homeSubject(rest string) subject {
	if escapesHome(rest) {
		return subject{root: "/", segs: capSegs(splitSegs(rest))}
	}
	return subject{root: "~", segs: capSegs(splitSegs(rest))}
}

// escapesHome reports whether a relative path climbs above its start.
func escapesHome(rest string) bool {
	depth := 0
	for _, s := range strings.Split(rest, "/") {
		switch s {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func capSegs(s []string) []string {
	if len(s) > maxSegs {
		return s[:maxSegs]
	}
	return s
}

// matchPath reports whether the paths that subject s may name intersect the
// paths that pattern p names. Glob characters in the subject (an unquoted
// `*` in the command) are honoured, so "/*" as typed matches "/etc".
func (p pathPattern) match(s subject) bool {
	switch p.root {
	case "":
		if s.root == "." && len(s.segs) == 0 {
			return false
		}
	case s.root:
	default:
		return false
	}
	return matchSegs(p.segs, s.segs)
}

// matchSegs matches segment lists where a "**" pattern segment matches any
// number of segments, with the classic backtrack-to-last-star algorithm.
func matchSegs(ps, ss []string) bool {
	pi, si := 0, 0
	starP, starS := -1, 0
	for si < len(ss) {
		if pi < len(ps) {
			if ps[pi] == "**" {
				starP, starS = pi, si
				pi++
				continue
			}
			if segMatch(ps[pi], ss[si]) {
				pi++
				si++
				continue
			}
		}
		if starP < 0 {
			return false
		}
		starS++
		si = starS
		pi = starP + 1
	}
	for pi < len(ps) && ps[pi] == "**" {
		pi++
	}
	return pi == len(ps)
}

// segMatch matches one path segment. When the subject segment is itself a
// glob, it matches if some name could match both.
func segMatch(p, s string) bool {
	if p == s {
		return true
	}
	if ok, _ := path.Match(p, s); ok {
		return true
	}
	if !hasMeta(s) {
		return false
	}
	if !hasMeta(p) {
		ok, _ := path.Match(goGlob(s), unescapeGlob(p))
		return ok
	}
	a, b := literalPrefix(p), literalPrefix(s)
	return strings.HasPrefix(a, b) || strings.HasPrefix(b, a)
}

func literalPrefix(s string) string {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			return s[:i]
		}
	}
	return s
}

// String renders the subject as a path: "/", "/etc/passwd", "~/.ssh".
func (s subject) String() string {
	out := s.root
	for i, seg := range s.segs {
		if i > 0 || s.root != "/" {
			out += "/"
		}
		out += seg
	}
	return out
}

func containsHole(s string) bool { return strings.Contains(s, hole) }

// goGlob turns the shell's class negation [!...] into path.Match's [^...].
func goGlob(p string) string {
	if !strings.Contains(p, "[!") {
		return p
	}
	b := []byte(p)
	for i := 0; i+1 < len(b); i++ {
		switch {
		case b[i] == '\\':
			i++
		case b[i] == '[' && b[i+1] == '!':
			b[i+1] = '^'
		}
	}
	return string(b)
}
