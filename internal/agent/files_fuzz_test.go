package agent

import (
	"bytes"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/agentapi"
)

func FuzzResolveFilePath(f *testing.F) {
	for _, s := range []string{"", ".", "..", "a", "/abs", "a/../../b", "//x//", "a\x00", "~", "./-", "../../../../etc/passwd", "a/./b/"} {
		f.Add("/workspace", s)
	}
	f.Add("/", "x/..")
	f.Fuzz(func(t *testing.T, workdir, p string) {
		if !filepath.IsAbs(workdir) || strings.IndexByte(workdir, 0) >= 0 {
			t.Skip()
		}
		got, err := resolveFilePath(workdir, p)
		if err != nil {
			if p != "" && strings.IndexByte(p, 0) < 0 {
				t.Fatalf("resolveFilePath(%q, %q) failed: %v", workdir, p, err)
			}
			return
		}
		if p == "" || strings.IndexByte(p, 0) >= 0 {
			t.Fatalf("resolveFilePath(%q, %q) = %q, want an error", workdir, p, got)
		}
		if !filepath.IsAbs(got) || filepath.Clean(got) != got {
			t.Fatalf("resolveFilePath(%q, %q) = %q: not absolute and clean", workdir, p, got)
		}
		for elem := range strings.SplitSeq(got, "/") {
			if elem == ".." || elem == "." {
				t.Fatalf("resolveFilePath(%q, %q) = %q has %q", workdir, p, got, elem)
			}
		}
		if !filepath.IsAbs(p) && !strings.Contains(p, "..") && !strings.HasPrefix(got, filepath.Clean(workdir)) {
			t.Fatalf("resolveFilePath(%q, %q) = %q is not below the workdir", workdir, p, got)
		}
	})
}

func FuzzCleanTarName(f *testing.F) {
	for _, s := range []string{"", ".", "./", "a", "a/", "./a/b", "/etc/passwd", "../x", "a/../b", "a/..", "..", "a//b", "a/./b", "a\x00b", "...", "..a", "a/...", "\\..\\x"} {
		f.Add(s, "../x")
	}
	f.Add("dir/link", "../../x")
	f.Add("link", "/etc")
	f.Add("a/b/link", "../c")
	f.Fuzz(func(t *testing.T, name, target string) {
		const root = "/root/dir"
		clean, err := agentapi.CleanTarName(name)
		if err != nil {
			return
		}
		switch {
		case clean == "":
			if path.Clean(name) != "." {
				t.Fatalf("CleanTarName(%q) = root", name)
			}
			return
		case strings.HasPrefix(clean, "/"), path.Clean(clean) != clean, strings.HasSuffix(clean, "/"):
			t.Fatalf("CleanTarName(%q) = %q: not relative and clean", name, clean)
		case strings.IndexByte(clean, 0) >= 0:
			t.Fatalf("CleanTarName(%q) = %q has a NUL", name, clean)
		}
		if joined := path.Join(root, clean); !strings.HasPrefix(joined, root+"/") {
			t.Fatalf("CleanTarName(%q) = %q lands at %q, outside %s", name, clean, joined, root)
		}
		if err := agentapi.CheckLinkTarget(root, clean, target); err == nil {
			at := target
			if !path.IsAbs(target) {
				at = path.Join(root, path.Dir(clean), target)
			}
			if at = path.Clean(at); at != root && !strings.HasPrefix(at, root+"/") {
				t.Fatalf("CheckLinkTarget(%q, %q) accepted a link to %q", clean, target, at)
			}
		}
	})
}

func FuzzParseReadRange(f *testing.F) {
	for _, c := range [][4]string{
		{"", "", "", ""}, {"0", "10", "", ""}, {"-1", "", "", ""}, {"", "", "1", "2"}, {"", "", "0", ""},
		{"", "", "5", "4"}, {"", "", "", "7"}, {"1", "", "1", ""}, {"9223372036854775807", "1", "", ""}, {"x", "", "", ""},
		{"", "", "+3", " 4"}, {"", "", "99999999999999999999", ""},
	} {
		f.Add(c[0], c[1], c[2], c[3])
	}
	f.Fuzz(func(t *testing.T, offset, length, start, end string) {
		rr, err := parseReadRange(offset, length, start, end)
		if err != nil {
			return
		}
		if rr.lines {
			if rr.start < 1 || (rr.end != 0 && rr.end < rr.start) || offset != "" || length != "" {
				t.Fatalf("parseReadRange(%q, %q, %q, %q) = %+v", offset, length, start, end, rr)
			}
			return
		}
		if rr.offset < 0 || rr.length < -1 || start != "" || end != "" {
			t.Fatalf("parseReadRange(%q, %q, %q, %q) = %+v", offset, length, start, end, rr)
		}
	})
}

// copyLines must agree with splitting the whole content in memory.
func FuzzCopyLines(f *testing.F) {
	f.Add([]byte("one\ntwo\nthree"), int64(1), int64(0))
	f.Add([]byte("a\n\n\nb\n"), int64(2), int64(3))
	f.Add([]byte(""), int64(1), int64(1))
	f.Add([]byte("no newline"), int64(1), int64(1))
	f.Add([]byte("x\n"), int64(2), int64(0))
	f.Fuzz(func(t *testing.T, content []byte, start, end int64) {
		if start < 1 || end < 0 || (end != 0 && end < start) {
			t.Skip()
		}
		var lines [][]byte
		if len(content) > 0 {
			lines = bytes.SplitAfter(content, []byte("\n"))
			if len(lines[len(lines)-1]) == 0 {
				lines = lines[:len(lines)-1]
			}
		}
		var want []byte
		for i, l := range lines {
			n := int64(i) + 1
			if n >= start && (end == 0 || n <= end) {
				want = append(want, l...)
			}
		}
		var got bytes.Buffer
		if err := copyLines(&got, bytes.NewReader(content), start, end); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Fatalf("copyLines(%q, %d, %d) = %q, want %q", content, start, end, got.Bytes(), want)
		}
	})
}

// A long line crosses the reader's buffer; the range must still be exact.
func TestCopyLinesLongLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("y", 150<<10)
	content := "a\n" + long + "\n" + long + "b\nlast"
	for _, c := range []struct {
		start, end int64
		want       string
	}{
		{2, 2, long + "\n"}, {3, 3, long + "b\n"}, {3, 0, long + "b\nlast"}, {4, 4, "last"}, {1, 1, "a\n"},
	} {
		var got bytes.Buffer
		if err := copyLines(&got, strings.NewReader(content), c.start, c.end); err != nil {
			t.Fatal(err)
		}
		if got.String() != c.want {
			t.Errorf("lines %d-%d: %d bytes, want %d", c.start, c.end, got.Len(), len(c.want))
		}
	}
}
