package config

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckVolumes(t *testing.T) {
	good := []string{
		"",
		"/home/me/src:/workspace",
		"/path1:/workspace/path1,/path2:/workspace/path2:ro",
		"myvol:/data:rw",
		"/repo:/workspace/repo:overlay",
		"./rel:/x", // a relative host path names a Docker volume; the mounts package decides
	}
	for _, v := range good {
		if ps := checkVolumes(v); len(ps) != 0 {
			t.Errorf("checkVolumes(%q): %v", v, errors.Join(ps.errs("sandbox.volumes")...))
		}
	}
	bad := map[string]string{
		"/a":                   `item 1 "/a": has 1 colon-separated parts`,
		"/a:/b:ro:x":           `has 4 colon-separated parts`,
		"C:\\src:/w":           `item 1 "C:\\src:/w": container path "\\src" is not absolute`,
		"/a:/b,":               `item 2 "": is empty`,
		",/a:/b":               `item 1 "": is empty`,
		"/a:/b, /c:/d":         `item 2 " /c:/d": has spaces around it`,
		":/b":                  `has an empty part`,
		"/a:/b:":               `has an empty part`,
		"/a:b":                 `container path "b" is not absolute`,
		"/a:/b:RW":             `unknown mode "RW"`,
		"/a:/b:z":              `unknown mode "z"`,
		"vol:/b:overlay":       `an overlay needs an absolute host path, got "vol"`,
		"/a:/w,/b:/w/":         `item 2 "/b:/w/": container path "/w" is already mounted by "/a:/w"`,
		"volume:name:/path":    `container path "name" is not absolute`, // OpenHands' documented form, which never worked
		"/a:/b,/c:d,/e:/f:bad": `item 2 "/c:d"`,
	}
	for in, want := range bad {
		err := errors.Join(checkVolumes(in).errs("sandbox.volumes")...)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("checkVolumes(%q) = %v, want it to contain %q", in, err, want)
		}
	}
	if n := len(checkVolumes("/a:/b,/c:d,/e:/f:bad")); n != 2 {
		t.Errorf("got %d problems for two bad items, want 2", n)
	}
}
