package mounts

import (
	"fmt"
	"maps"
	"os"

	"github.com/moby/moby/api/types/mount"
)

// Docker turns ms into the mounts of a container create call.
//
//   - bind: type bind, Source the host path, ReadOnly as given.
//   - named volume: type volume, Source the name; Docker creates the volume
//     if it is absent, and then gives it labels (VolumeOptions.Labels), so
//     berth can find the volumes it made. A volume that exists keeps its own.
//   - overlay: an anonymous volume of the local driver, mounted by the daemon
//     as a kernel overlay: lowerdir the host dir, upperdir and workdir from
//     overlay(m) (see Overlays.Prepare); labelled. NoCopy is set, so the image's
//     files at the target are never copied into the upper dir: the sandbox sees
//     the host dir as it is. The volume goes when its container is removed
//     with its volumes.
//   - tmpfs: type tmpfs with TmpfsOptions{SizeBytes, Mode}.
//
// overlay may be nil only if ms holds no overlay mount; Docker panics
// otherwise, as that is a bug of the caller. Each mount gets its own copy of
// labels; nil or empty labels add none.
func Docker(ms []Mount, overlay func(m Mount) (upper, work string), labels map[string]string) []mount.Mount {
	out := make([]mount.Mount, 0, len(ms))
	for _, m := range ms {
		dm := mount.Mount{Target: m.Target, ReadOnly: m.ReadOnly}
		switch m.Kind {
		case KindBind:
			dm.Type, dm.Source = mount.TypeBind, m.Source
		case KindVolume:
			dm.Type, dm.Source = mount.TypeVolume, m.Source
			if len(labels) > 0 {
				dm.VolumeOptions = &mount.VolumeOptions{Labels: maps.Clone(labels)}
			}
		case KindOverlay:
			if overlay == nil {
				panic(fmt.Sprintf("mounts.Docker: overlay mount %s needs the func from Overlays.Prepare, got nil", m))
			}
			upper, work := overlay(m)
			dm.Type = mount.TypeVolume
			dm.ReadOnly = false
			dm.VolumeOptions = &mount.VolumeOptions{
				NoCopy: true,
				DriverConfig: &mount.Driver{
					Name: "local",
					Options: map[string]string{
						"type":   "overlay",
						"device": "overlay",
						"o":      overlayOptions(m.Source, upper, work),
					},
				},
			}
			if len(labels) > 0 {
				dm.VolumeOptions.Labels = maps.Clone(labels)
			}
		case KindTmpfs:
			dm.Type = mount.TypeTmpfs
			if m.TmpfsSize != 0 || m.TmpfsMode != 0 {
				// Docker writes Mode with %o: the raw permission bits (01777),
				// not Go's os.ModeSticky, are what it wants.
				dm.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: m.TmpfsSize, Mode: os.FileMode(m.TmpfsMode)}
			}
		default:
			panic(fmt.Sprintf("mounts.Docker: mount %d has unknown kind %q", m.Index, m.Kind))
		}
		out = append(out, dm)
	}
	return out
}

// overlayOptions is the "o" option of an overlay volume: the kernel's
// overlay mount options for lower dir lower, upper dir upper and work dir
// work.
func overlayOptions(lower, upper, work string) string {
	return "lowerdir=" + lower + ",upperdir=" + upper + ",workdir=" + work
}
