package mounts

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseVolumesValid(t *testing.T) {
	cases := []struct {
		spec string
		want []Mount
	}{
		{"", nil},
		{"   ", nil},
		{"/home/me/src:/workspace", []Mount{{Kind: KindBind, Source: "/home/me/src", Target: "/workspace"}}},
		{"/data:/data:rw", []Mount{{Kind: KindBind, Source: "/data", Target: "/data"}}},
		{"/data:/data:ro", []Mount{{Kind: KindBind, Source: "/data", Target: "/data", ReadOnly: true}}},
		{"cache:/cache", []Mount{{Kind: KindVolume, Source: "cache", Target: "/cache"}}},
		{"my_vol.2-x:/c:ro", []Mount{{Kind: KindVolume, Source: "my_vol.2-x", Target: "/c", ReadOnly: true}}},
		{"9v:/c", []Mount{{Kind: KindVolume, Source: "9v", Target: "/c"}}},
		{"/repo:/workspace/repo:overlay", []Mount{{Kind: KindOverlay, Source: "/repo", Target: "/workspace/repo"}}},
		{"/:/host:ro", []Mount{{Kind: KindBind, Source: "/", Target: "/host", ReadOnly: true}}},
		// paths are cleaned; ".." is fine as long as the result is not "/"
		{"/a/./b/../c/:/w//x/../y/", []Mount{{Kind: KindBind, Source: "/a/c", Target: "/w/y"}}},
		{"/a:/x/..//y", []Mount{{Kind: KindBind, Source: "/a", Target: "/y"}}},
		// the documented OpenHands example, and spaces around commas
		{"/path1:/workspace/path1,/path2:/workspace/path2:ro", []Mount{
			{Kind: KindBind, Source: "/path1", Target: "/workspace/path1"},
			{Kind: KindBind, Source: "/path2", Target: "/workspace/path2", ReadOnly: true, Index: 1},
		}},
		{" /a:/w ,\tvol:/v:ro , /r:/o:overlay\n", []Mount{
			{Kind: KindBind, Source: "/a", Target: "/w"},
			{Kind: KindVolume, Source: "vol", Target: "/v", ReadOnly: true, Index: 1},
			{Kind: KindOverlay, Source: "/r", Target: "/o", Index: 2},
		}},
		// nested targets are distinct mounts
		{"/a:/w,/b:/w/sub", []Mount{
			{Kind: KindBind, Source: "/a", Target: "/w"},
			{Kind: KindBind, Source: "/b", Target: "/w/sub", Index: 1},
		}},
	}
	for _, c := range cases {
		got, err := ParseVolumes(c.spec)
		if err != nil {
			t.Errorf("ParseVolumes(%q): %v", c.spec, err)
			continue
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Errorf("ParseVolumes(%q) =\n %+v\nwant\n %+v", c.spec, got, c.want)
		}
	}
}

func TestParseVolumesInvalid(t *testing.T) {
	cases := []struct {
		spec string
		want []string // each must appear in the error
	}{
		{"/a", []string{`volume item 1 "/a": has 1 colon-separated parts, want 2 or 3 (host:container[:mode])`}},
		{"/a:/b:ro:x", []string{`volume item 1 "/a:/b:ro:x": has 4 colon-separated parts`}},
		{"/a:/b,", []string{`volume item 2 "": is empty (a stray comma?)`}},
		{",/a:/b", []string{`volume item 1 "": is empty`}},
		{"/a:/b,  ,/c:/d", []string{`volume item 2 "  ": is empty`}},
		{":/b", []string{`volume item 1 ":/b": host path is empty`}},
		{"/a:", []string{`volume item 1 "/a:": container path is empty`}},
		{"/a::ro", []string{`volume item 1 "/a::ro": container path is empty`}},
		{"/a:/b:", []string{`volume item 1 "/a:/b:": mode is empty (want rw, ro or overlay)`}},
		{"/a:b", []string{`volume item 1 "/a:b": container path "b" is not absolute`}},
		{`C:\src:/w`, []string{`volume item 1 "C:\\src:/w": container path "\\src" is not absolute`}},
		{"/a:/", []string{`volume item 1 "/a:/": container path "/" is the container's root`}},
		{"/a:/x/..", []string{`container path "/x/.." is the container's root`}},
		{"/a://", []string{`container path "//" is the container's root`}},
		{"/a:/b:RW", []string{`volume item 1 "/a:/b:RW": unknown mode "RW" (want rw, ro or overlay)`}},
		{"/a:/b:z", []string{`unknown mode "z"`}},
		{"vol:/b:overlay", []string{`volume item 1 "vol:/b:overlay": an overlay needs an absolute host path, got "vol"`}},
		{"./src:/b", []string{`volume item 1 "./src:/b": volume name "./src" is invalid: a relative host path names a Docker volume`, "absolute host path"}},
		{"~/src:/b", []string{`volume name "~/src" is invalid`}},
		{"v:/b", []string{`volume name "v" is invalid`, "2 characters or more"}},
		{"_v:/b", []string{`volume name "_v" is invalid`}},
		{"a b:/b", []string{`volume name "a b" is invalid`}},
		{`/a\b:/b:overlay`, []string{`volume item 1 "/a\\b:/b:overlay": overlay host path "/a\\b" contains "," or "\"`}},
		{"/a :/b", []string{`volume item 1 "/a :/b": host path "/a " has white space at an end (a typo?)`}},
		{"/a/ /:/b", []string{`volume item 1 "/a/ /:/b": host path "/a/ /" has white space at an end`}},
		{"/a: /b", []string{`volume item 1 "/a: /b": container path " /b" has white space at an end`}},
		{"/a:/ /", []string{`volume item 1 "/a:/ /": container path "/ /" has white space at an end`}},
		{"/a:/b: ro", []string{`volume item 1 "/a:/b: ro": mode " ro" has white space at an end`}},
		{"/a:/w,/b:/w/", []string{`volume item 2 "/b:/w/": container path "/w" is already mounted by item 1 "/a:/w"`}},
		{"/a:/w, v1:/x/../w:ro", []string{`volume item 2 " v1:/x/../w:ro": container path "/w" is already mounted by item 1 "/a:/w"`}},
		// OpenHands' documented explicit-volume form never worked; say so
		{"volume:name:/path", []string{`volume item 1 "volume:name:/path": container path "name" is not absolute (OpenHands' "volume:NAME:PATH" form is not supported: write "NAME:PATH")`}},
		// several bad items: all reported, good ones ignored
		{"/a:/b,/c:d,/e:/f:bad,,x:/y", []string{
			`volume item 2 "/c:d"`, `volume item 3 "/e:/f:bad"`, `volume item 4 ""`, `volume item 5 "x:/y"`,
		}},
	}
	for _, c := range cases {
		got, err := ParseVolumes(c.spec)
		if err == nil {
			t.Errorf("ParseVolumes(%q) = %+v, want an error", c.spec, got)
			continue
		}
		if got != nil {
			t.Errorf("ParseVolumes(%q) returned mounts %+v with its error", c.spec, got)
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseVolumes(%q) error\n %v\nwant it to contain\n %s", c.spec, err, w)
			}
		}
		if n, want := strings.Count(err.Error(), "volume item "), len(c.want); len(c.want) > 1 && strings.HasPrefix(c.want[1], "volume item") && n != want {
			t.Errorf("ParseVolumes(%q): %d errors, want %d:\n%v", c.spec, n, want, err)
		}
	}
}

func TestParseVolumesErrorPerLine(t *testing.T) {
	_, err := ParseVolumes("/a:b,/c,/d:/e:x")
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("want one line per bad item, got %q", lines)
	}
	for i, l := range lines {
		if !strings.HasPrefix(l, "volume item ") {
			t.Errorf("line %d %q does not name the item", i, l)
		}
	}
}

func TestParseVolumesLongItemQuotedShort(t *testing.T) {
	long := "/" + strings.Repeat("a", 5000)
	_, err := ParseVolumes(long)
	if err == nil {
		t.Fatal("no error")
	}
	if len(err.Error()) > 400 || !strings.Contains(err.Error(), `"/aaaa`) {
		t.Errorf("error should quote a cut item: %d bytes: %.200s", len(err.Error()), err)
	}
}

func TestParseVolumeList(t *testing.T) {
	got, err := ParseVolumeList([]string{"/a:/w", " vol:/v:ro ", "/r:/o:overlay", "/x,y:/z"})
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Kind: KindBind, Source: "/a", Target: "/w"},
		{Kind: KindVolume, Source: "vol", Target: "/v", ReadOnly: true, Index: 1},
		{Kind: KindOverlay, Source: "/r", Target: "/o", Index: 2},
		{Kind: KindBind, Source: "/x,y", Target: "/z", Index: 3}, // one item, one mount: commas are not split
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ParseVolumeList =\n %+v\nwant\n %+v", got, want)
	}
	if got, err := ParseVolumeList(nil); got != nil || err != nil {
		t.Errorf("ParseVolumeList(nil) = %v, %v", got, err)
	}

	_, err = ParseVolumeList([]string{"/a:/w", "", "/a,b:/o:overlay", "/b:/w", "/a:/w,/c:/d"})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	for _, w := range []string{
		`volume item 2 "": is empty`,
		`volume item 3 "/a,b:/o:overlay": overlay host path "/a,b" contains "," or "\"`,
		`volume item 4 "/b:/w": container path "/w" is already mounted by item 1 "/a:/w"`,
		`volume item 5 "/a:/w,/c:/d": unknown mode "/d"`,
	} {
		if !strings.Contains(msg, w) {
			t.Errorf("error\n %s\nwant it to contain\n %s", msg, w)
		}
	}

	// ParseVolumes is ParseVolumeList over the comma-split spec
	spec := "/a:/w,vol:/v:ro,/r:/o:overlay"
	a, err1 := ParseVolumes(spec)
	b, err2 := ParseVolumeList(strings.Split(spec, ","))
	if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
		t.Errorf("ParseVolumes and ParseVolumeList differ: %v %v / %v %v", a, err1, b, err2)
	}
}

func TestParseTmpfsValid(t *testing.T) {
	cases := map[string]Mount{
		"/tmp":                      {Kind: KindTmpfs, Target: "/tmp"},
		" /run/ ":                   {Kind: KindTmpfs, Target: "/run"},
		"/tmp:size=64m":             {Kind: KindTmpfs, Target: "/tmp", TmpfsSize: 64 << 20},
		"/tmp:size=1g,mode=1777":    {Kind: KindTmpfs, Target: "/tmp", TmpfsSize: 1 << 30, TmpfsMode: 0o1777},
		"/tmp:mode=01777,size=512k": {Kind: KindTmpfs, Target: "/tmp", TmpfsSize: 512 << 10, TmpfsMode: 0o1777},
		"/tmp,mode=755":             {Kind: KindTmpfs, Target: "/tmp", TmpfsMode: 0o755},
		"/tmp:size=64m, mode=1777":  {Kind: KindTmpfs, Target: "/tmp", TmpfsSize: 64 << 20, TmpfsMode: 0o1777},
		"/t:size=4096":              {Kind: KindTmpfs, Target: "/t", TmpfsSize: 4096},
		"/t:size=1.5G":              {Kind: KindTmpfs, Target: "/t", TmpfsSize: 3 << 29},
		"/t:size=65536k,rw":         {Kind: KindTmpfs, Target: "/t", TmpfsSize: 64 << 20},
		"/t:ro":                     {Kind: KindTmpfs, Target: "/t", ReadOnly: true},
		"/x/../t/:mode=700":         {Kind: KindTmpfs, Target: "/t", TmpfsMode: 0o700},
	}
	for spec, want := range cases {
		got, err := ParseTmpfs(spec)
		if err != nil {
			t.Errorf("ParseTmpfs(%q): %v", spec, err)
			continue
		}
		if got != want {
			t.Errorf("ParseTmpfs(%q) = %+v, want %+v", spec, got, want)
		}
	}
}

func TestParseTmpfsInvalid(t *testing.T) {
	cases := map[string][]string{
		"":                       {`tmpfs "": is empty (want PATH[:size=SIZE, mode=OCTAL, rw, ro])`},
		"tmp":                    {`tmpfs "tmp": container path "tmp" is not absolute`},
		":size=1m":               {`tmpfs ":size=1m": container path is empty`},
		"/":                      {`tmpfs "/": container path "/" is the container's root`},
		"/tmp:":                  {`tmpfs "/tmp:": has an empty option (a stray ':' or ','?)`},
		"/tmp:size=64m,":         {`tmpfs "/tmp:size=64m,": has an empty option`},
		"/tmp:size=64x":          {`tmpfs "/tmp:size=64x": invalid size "64x": unknown unit "x"`},
		"/tmp:size=":             {`tmpfs "/tmp:size=": invalid size "": empty`},
		"/tmp:size=-1":           {`invalid size "-1"`},
		"/tmp:size=0":            {`tmpfs "/tmp:size=0": size "0" is 0: leave size out for Docker's default`},
		"/tmp:mode=1778":         {`tmpfs "/tmp:mode=1778": mode "1778" is not an octal permission mode between 1 and 7777`},
		"/tmp:mode=17777":        {`mode "17777" is not an octal permission mode`},
		"/tmp:mode=rwx":          {`mode "rwx" is not an octal`},
		"/tmp:mode=0":            {`tmpfs "/tmp:mode=0": mode "0" would leave the tmpfs inaccessible`},
		"/tmp:noexec":            {`tmpfs "/tmp:noexec": unknown option "noexec" (supported: size=SIZE, mode=OCTAL, rw, ro)`},
		"/tmp:size=1m,size=2m":   {`tmpfs "/tmp:size=1m,size=2m": option "size=2m" clashes with earlier "size=1m": give it once`},
		"/tmp:rw,ro":             {`option "ro" clashes with earlier "rw"`},
		"/tmp:uid=1000":          {`unknown option "uid=1000"`},
		"/ /":                    {`tmpfs "/ /": container path "/ /" has white space at an end`},
		"/t :ro":                 {`tmpfs "/t :ro": container path "/t " has white space at an end`},
		"/tmp/a:b:c":             {`unknown option "b:c"`},
		"tmp:size=9x,mode=9,bad": {`container path "tmp" is not absolute`, `invalid size "9x"`, `mode "9" is not`, `unknown option "bad"`},
	}
	for spec, wants := range cases {
		got, err := ParseTmpfs(spec)
		if err == nil {
			t.Errorf("ParseTmpfs(%q) = %+v, want an error", spec, got)
			continue
		}
		if got != (Mount{}) {
			t.Errorf("ParseTmpfs(%q) returned %+v with its error", spec, got)
		}
		for _, w := range wants {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("ParseTmpfs(%q) error\n %v\nwant it to contain\n %s", spec, err, w)
			}
		}
		if n := strings.Count(err.Error(), "tmpfs "+quote(spec)); n != len(wants) {
			t.Errorf("ParseTmpfs(%q): %d problems reported, want %d:\n%v", spec, n, len(wants), err)
		}
	}
}

func TestMountStringRoundTrip(t *testing.T) {
	ms, err := ParseVolumes("/a:/w,vol:/v:ro,/r:/o:overlay,/b:/b:rw")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/a:/w", "vol:/v:ro", "/r:/o:overlay", "/b:/b"}
	for i, m := range ms {
		if m.String() != want[i] {
			t.Errorf("String() = %q, want %q", m.String(), want[i])
		}
	}
	tm, err := ParseTmpfs("/t,ro,mode=1777,size=64m")
	if err != nil {
		t.Fatal(err)
	}
	if s := tm.String(); s != "/t:size=67108864,mode=1777,ro" {
		t.Errorf("String() = %q", s)
	}
	if back, err := ParseTmpfs(tm.String()); err != nil || back != tm {
		t.Errorf("ParseTmpfs(%q) = %+v, %v; want %+v", tm.String(), back, err, tm)
	}
}
