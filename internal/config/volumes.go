package config

import (
	"github.com/berth-dev/berth/internal/mounts"
)

// checkVolumes checks sandbox.volumes ("host:container[:mode],...") with
// the parser that mounts them, so the file and a create never disagree.
func checkVolumes(spec string) problems {
	if spec == "" {
		return nil
	}
	if _, err := mounts.ParseVolumes(spec); err != nil {
		return problems{{Err: err, Reason: err.Error()}}
	}
	return nil
}

func checkTmpfs(s Sandbox) problems {
	var ps problems
	for _, t := range s.Tmpfs {
		if _, err := mounts.ParseTmpfs(t); err != nil {
			ps = append(ps, &Error{Err: err, Reason: err.Error()})
		}
	}
	return ps
}
