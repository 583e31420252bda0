package mounts

import (
	"path"
	"strings"
	"testing"

	"github.com/moby/moby/api/types/mount"
)

// checkTarget fails t unless p is an absolute, clean container path other than "/".
func checkTarget(t *testing.T, in string, p string) {
	t.Helper()
	if !path.IsAbs(p) || path.Clean(p) != p || p == "/" {
		t.Fatalf("%q: accepted target %q is not absolute and clean, or is /", in, p)
	}
}

func FuzzParseVolumes(f *testing.F) {
	for _, s := range []string{
		"", "/a:/b", "/a:/b:ro,/c:/d:rw", "vol:/data", "/r:/w:overlay", "/a", "/a:b", "/a:/",
		"/a:/w,/b:/w/", "volume:name:/path", " /a:/w , v1:/v ", "/a\\b:/c:overlay", "./x:/y",
		"/x/../..:/y/../z/", ",,", "C:\\src:/w", "/a:/b:RW", "ab:/c:overlay",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		ms, err := ParseVolumes(spec)
		if err != nil {
			if ms != nil {
				t.Fatalf("%q: mounts %v returned with error %v", spec, ms, err)
			}
			if !strings.HasPrefix(err.Error(), "volume item ") {
				t.Fatalf("%q: error does not name the item: %v", spec, err)
			}
			return
		}
		items := strings.Split(spec, ",")
		if strings.TrimSpace(spec) == "" {
			items = nil
		}
		if len(ms) != len(items) {
			t.Fatalf("%q: %d items gave %d mounts: something was dropped", spec, len(items), len(ms))
		}
		targets := map[string]bool{}
		for i, m := range ms {
			checkTarget(t, spec, m.Target)
			if targets[m.Target] {
				t.Fatalf("%q: target %q accepted twice", spec, m.Target)
			}
			targets[m.Target] = true
			if m.Index != i {
				t.Fatalf("%q: mount %d has Index %d", spec, i, m.Index)
			}
			switch m.Kind {
			case KindBind, KindOverlay:
				if !path.IsAbs(m.Source) || path.Clean(m.Source) != m.Source {
					t.Fatalf("%q: %s source %q is not absolute and clean", spec, m.Kind, m.Source)
				}
				if m.Kind == KindOverlay && (m.ReadOnly || strings.ContainsAny(m.Source, `,:\`)) {
					t.Fatalf("%q: bad overlay %+v", spec, m)
				}
			case KindVolume:
				if !validVolumeName(m.Source) || strings.ContainsAny(m.Source, "/:, ") {
					t.Fatalf("%q: bad volume name %q", spec, m.Source)
				}
			default:
				t.Fatalf("%q: kind %q", spec, m.Kind)
			}
			if m.TmpfsSize != 0 || m.TmpfsMode != 0 {
				t.Fatalf("%q: tmpfs options on %+v", spec, m)
			}
			// String gives an item that parses back to the same mount.
			back, err := ParseVolumeList([]string{m.String()})
			if err != nil || len(back) != 1 || back[0] != (Mount{Kind: m.Kind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly}) {
				t.Fatalf("%q: %+v does not round-trip through %q: %+v, %v", spec, m, m.String(), back, err)
			}
		}
		// Docker accepts every parsed list.
		dm := Docker(ms, func(Mount) (string, string) { return "/u", "/w" }, map[string]string{"k": "v"})
		for i, d := range dm {
			if d.Target != ms[i].Target {
				t.Fatalf("%q: docker target %q for %q", spec, d.Target, ms[i].Target)
			}
			if ms[i].Kind == KindOverlay && (d.Type != mount.TypeVolume || d.Source != "" ||
				d.VolumeOptions.DriverConfig.Options["o"] != "lowerdir="+ms[i].Source+",upperdir=/u,workdir=/w") {
				t.Fatalf("%q: overlay mount %+v", spec, d)
			}
		}
	})
}

func FuzzParseTmpfs(f *testing.F) {
	for _, s := range []string{
		"/tmp", "/tmp:size=64m,mode=1777", "/run,mode=755", "/t:size=1.5g", "/t:ro", "/", "tmp",
		"/t:", "/t:size=0", "/t:mode=0", "/t:mode=17777", "/t:size=1m,size=2m", "/t:noexec", "/t:size=99999999999t",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		m, err := ParseTmpfs(spec)
		if err != nil {
			if m != (Mount{}) {
				t.Fatalf("%q: mount %+v returned with error %v", spec, m, err)
			}
			if !strings.HasPrefix(err.Error(), "tmpfs ") {
				t.Fatalf("%q: error does not name the input: %v", spec, err)
			}
			return
		}
		checkTarget(t, spec, m.Target)
		if m.Kind != KindTmpfs || m.Source != "" || m.Index != 0 {
			t.Fatalf("%q: %+v", spec, m)
		}
		if m.TmpfsSize < 0 || m.TmpfsMode > 0o7777 {
			t.Fatalf("%q: size %d, mode %o", spec, m.TmpfsSize, m.TmpfsMode)
		}
		if back, err := ParseTmpfs(m.String()); err != nil || back != m {
			t.Fatalf("%q: %+v does not round-trip through %q: %+v, %v", spec, m, m.String(), back, err)
		}
		d := Docker([]Mount{m}, nil, nil)[0]
		if d.Type != mount.TypeTmpfs || d.Source != "" || d.Target != m.Target {
			t.Fatalf("%q: docker mount %+v", spec, d)
		}
		if (d.TmpfsOptions == nil) != (m.TmpfsSize == 0 && m.TmpfsMode == 0) {
			t.Fatalf("%q: tmpfs options %+v for %+v", spec, d.TmpfsOptions, m)
		}
	})
}
