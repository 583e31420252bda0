package docker

import (
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// FromSummary builds a sandbox record from one entry of a container list,
// exactly as List does, without calling the engine. A list entry carries no
// environment, so the record's Key is empty, and neither OOMKilled nor
// Error; the exit code of an exited container is read from its status text.
// berth serve's monitor builds its view with it (one list, no inspect).
func (r *Runtime) FromSummary(c container.Summary) sandbox.Sandbox { return r.fromSummary(c) }

// FromInspect builds a sandbox record from a container's inspect answer,
// exactly as Get does, without calling the engine.
func (r *Runtime) FromInspect(c container.InspectResponse) sandbox.Sandbox {
	var labels map[string]string
	var env []string
	if c.Config != nil {
		labels, env = c.Config.Labels, c.Config.Env
	}
	sb := r.base(c.ID, labels)
	if c.State != nil {
		sb.State = string(c.State.Status)
		sb.ExitCode = c.State.ExitCode
		sb.OOMKilled = c.State.OOMKilled
		sb.Error = c.State.Error
	}
	sb.Status = sandbox.StatusFromState(sb.State)
	if t, err := time.Parse(time.RFC3339Nano, c.Created); err == nil {
		sb.CreatedAt = t.UTC()
	}
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, agentapi.EnvKey+"="); ok {
			sb.Key = v
		}
	}
	bind := defaultBindAddress
	if c.HostConfig != nil {
		for _, bs := range c.HostConfig.PortBindings {
			for _, b := range bs {
				if b.HostIP.IsValid() {
					bind = b.HostIP.String()
				}
			}
		}
	}
	socketDir := ""
	for _, m := range c.Mounts {
		if m.Destination == socketMount {
			socketDir = m.Source
		}
	}
	r.addPorts(&sb, labels, bind, socketDir)
	r.applyClaim(&sb, labels)
	return sb
}
