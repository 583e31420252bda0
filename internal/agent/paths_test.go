package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestResolveCwd(t *testing.T) {
	tests := []struct{ cwd, want string }{
		{"", "/workspace"},
		{".", "/workspace"},
		{"sub", "/workspace/sub"},
		{"sub/../other/", "/workspace/other"},
		{"../etc", "/etc"},
		{"/tmp", "/tmp"},
		{"/tmp/../var//log/", "/var/log"},
		{"/", "/"},
	}
	for _, tt := range tests {
		got, err := resolveCwd("/workspace", tt.cwd)
		if err != nil || got != tt.want {
			t.Errorf("resolveCwd(%q) = %q, %v; want %q", tt.cwd, got, err, tt.want)
		}
	}
	if _, err := resolveCwd("/workspace", "a\x00b"); err == nil {
		t.Error("a NUL byte was accepted")
	}
}

func FuzzResolveCwd(f *testing.F) {
	for _, s := range []string{"", ".", "..", "sub", "/abs", "a/../../b", "//x//", "a\x00", "~", "./-"} {
		f.Add("/workspace", s)
	}
	f.Add("/", "x")
	f.Add("/w/", "../..")
	f.Fuzz(func(t *testing.T, workdir, cwd string) {
		if !filepath.IsAbs(workdir) || strings.IndexByte(workdir, 0) >= 0 {
			t.Skip()
		}
		got, err := resolveCwd(workdir, cwd)
		if strings.IndexByte(cwd, 0) >= 0 {
			if err == nil {
				t.Fatalf("cwd %q with NUL accepted", cwd)
			}
			return
		}
		if err != nil {
			t.Fatalf("resolveCwd(%q, %q): %v", workdir, cwd, err)
		}
		if !filepath.IsAbs(got) || filepath.Clean(got) != got {
			t.Fatalf("resolveCwd(%q, %q) = %q: not absolute and clean", workdir, cwd, got)
		}
		clean := filepath.Clean(workdir)
		switch {
		case filepath.IsAbs(cwd):
			if got != filepath.Clean(cwd) {
				t.Fatalf("absolute %q resolved to %q", cwd, got)
			}
		case !strings.HasPrefix(filepath.Clean(cwd), ".."):
			// A relative path that does not climb stays in the workdir.
			if got != clean && !strings.HasPrefix(got, strings.TrimSuffix(clean, "/")+"/") {
				t.Fatalf("relative %q left workdir %q: %q", cwd, workdir, got)
			}
		}
	})
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	write("tool", 0o755)
	write("data", 0o644)
	path := "/nonexistent:" + bin

	tests := []struct {
		argv0, want, errWant string
	}{
		{"tool", filepath.Join(bin, "tool"), ""},
		{"data", "", "not found in PATH"},
		{"missing", "", "not found in PATH"},
		{"bin/tool", filepath.Join(bin, "tool"), ""},
		{"./bin/data", "", "is not an executable file"},
		{filepath.Join(bin, "tool"), filepath.Join(bin, "tool"), ""},
		{"/nope/x", "", "does not exist"},
		{"", "", "empty"},
	}
	for _, tt := range tests {
		got, err := lookPath(tt.argv0, path, dir)
		switch {
		case tt.errWant == "" && (err != nil || got != tt.want):
			t.Errorf("lookPath(%q) = %q, %v; want %q", tt.argv0, got, err, tt.want)
		case tt.errWant != "" && (err == nil || !strings.Contains(err.Error(), tt.errWant)):
			t.Errorf("lookPath(%q) = %q, %v; want an error with %q", tt.argv0, got, err, tt.errWant)
		}
	}
	// A relative PATH entry is taken from the cwd.
	if got, err := lookPath("tool", "bin", dir); err != nil || got != filepath.Join(bin, "tool") {
		t.Errorf("relative PATH: %q, %v", got, err)
	}
}
