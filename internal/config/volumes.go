package config

import (
	"fmt"
	"path"
	"strings"
)

const volumesWant = "expected host_path:container_path[:mode], comma-separated, mode rw, ro or overlay"

// checkVolumes checks the syntax of sandbox.volumes, as OpenHands writes it:
// "host:container[:mode],...". Each item has 2 or 3 non-empty parts, an
// absolute container path and a mode of rw, ro or overlay; an overlay needs
// an absolute host path, and no container path may be mounted twice.
// A relative host path names a Docker volume. Mounting is done elsewhere.
func checkVolumes(spec string) problems {
	if spec == "" {
		return nil
	}
	var ps problems
	seen := map[string]string{}
	for i, item := range strings.Split(spec, ",") {
		reason := checkVolume(item)
		if reason == "" {
			container := path.Clean(strings.Split(item, ":")[1])
			if prev, dup := seen[container]; dup {
				reason = fmt.Sprintf("container path %s is already mounted by %s", show(container), show(prev))
			}
			seen[container] = item
		}
		if reason != "" {
			ps.add("", "", fmt.Sprintf("item %d %s: %s (%s)", i+1, show(item), reason, volumesWant))
		}
	}
	return ps
}

// checkVolume returns what is wrong with one item, or "".
func checkVolume(item string) string {
	if item == "" {
		return "is empty (a stray comma?)"
	}
	if strings.TrimSpace(item) != item {
		return "has spaces around it"
	}
	parts := strings.Split(item, ":")
	if len(parts) < 2 || len(parts) > 3 {
		return fmt.Sprintf("has %d colon-separated parts, want 2 or 3", len(parts))
	}
	for _, p := range parts {
		if p == "" {
			return "has an empty part"
		}
	}
	host, container, mode := parts[0], parts[1], "rw"
	if len(parts) == 3 {
		mode = parts[2]
	}
	if !path.IsAbs(container) {
		return fmt.Sprintf("container path %s is not absolute", show(container))
	}
	switch mode {
	case "rw", "ro":
	case "overlay":
		if !path.IsAbs(host) {
			return fmt.Sprintf("an overlay needs an absolute host path, got %s", show(host))
		}
	default:
		return fmt.Sprintf("unknown mode %s", show(mode))
	}
	return ""
}
