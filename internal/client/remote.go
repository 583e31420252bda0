package client

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// AgentURL is the base URL under which the server proxies the agent of
// sandbox id: an agent path P (see docs/agent-api.md) is AgentURL(id)+P.
// Requests need only the server's bearer token (Header); the server adds
// the sandbox's key.
func (c *Client) AgentURL(id string) string {
	return c.base + SandboxPath(id, AgentSuffix)
}

// Header is what every request to the server carries: the bearer token.
func (c *Client) Header() http.Header {
	h := http.Header{}
	if c.token != "" {
		h.Set("Authorization", "Bearer "+c.token)
	}
	return h
}

// Agent returns a client of sandbox id's agent through the server's proxy:
// exec, sessions, background processes, files and the PTY work as with a
// direct agentapi client, with only the server's address and token. Use
// the sandbox's full id (a reference is resolved on every call).
func (c *Client) Agent(id string) *agentapi.Client {
	return agentapi.New(c.AgentURL(id), "", c.hc)
}

// Remote is sandbox.Runtime over a berth server, so that code written for
// a local runtime (the CLI) drives a remote one unchanged.
type Remote struct{ C *Client }

var _ sandbox.Runtime = Remote{}

// Create sends spec as a CreateRequest (see RequestFromSpec): unset fields
// take the server's configured defaults.
func (r Remote) Create(ctx context.Context, spec sandbox.Spec) (sandbox.Sandbox, error) {
	req, err := RequestFromSpec(spec)
	if err != nil {
		return sandbox.Sandbox{}, err
	}
	return r.C.Create(ctx, req)
}

// Get returns the sandbox ref names.
func (r Remote) Get(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	return r.C.Get(ctx, ref)
}

// List returns the tenant's sandboxes (running ones unless opts.All),
// newest first. opts.Owner is ignored: a tenant sees its own.
func (r Remote) List(ctx context.Context, opts sandbox.ListOptions) ([]sandbox.Sandbox, error) {
	lo := ListOptions{Label: opts.Label}
	if !opts.All {
		lo.Status = sandbox.StatusRunning
	}
	return r.C.ListAll(ctx, lo)
}

// Pause freezes the sandbox.
func (r Remote) Pause(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	return r.C.Pause(ctx, ref)
}

// Resume thaws or starts the sandbox.
func (r Remote) Resume(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	return r.C.Resume(ctx, ref)
}

// Stop stops the sandbox.
func (r Remote) Stop(ctx context.Context, ref string) (sandbox.Sandbox, error) {
	return r.C.Stop(ctx, ref)
}

// Remove removes the sandbox; one already gone is not an error, as
// sandbox.Runtime asks.
func (r Remote) Remove(ctx context.Context, ref string) error {
	err := r.C.Remove(ctx, ref)
	if IsStatus(err, http.StatusNotFound) {
		return nil
	}
	return err
}

// Logs streams the container's logs.
func (r Remote) Logs(ctx context.Context, ref string, opts sandbox.LogOptions) (io.ReadCloser, error) {
	return r.C.Logs(ctx, ref, LogOptions{Follow: opts.Follow, Tail: opts.Tail})
}

// RequestFromSpec is the create request for spec: what a caller built with
// `berth create`'s flags over an empty spec. Fields the API does not carry
// (image build settings, bind address, ulimits...) must be zero: the
// server's configuration decides them; Debug and Owner are ignored.
func RequestFromSpec(spec sandbox.Spec) (CreateRequest, error) {
	var unsupported []string
	if spec.Image.ExtraDeps != "" || len(spec.Image.BuildArgs) > 0 || spec.Image.ForceRebuild {
		unsupported = append(unsupported, "image build settings")
	}
	if spec.BindAddress != "" {
		unsupported = append(unsupported, "bind address")
	}
	if spec.VSCodePort != 0 {
		unsupported = append(unsupported, "vscode port")
	}
	l := spec.Limits
	if l.MemorySwap != 0 || l.ShmSize != 0 || l.CPUPeriod != 0 || l.CPUQuota != 0 || l.MemorySwappiness != nil ||
		l.OOMKillDisable != nil || l.CpusetCpus != "" || l.Runtime != "" || len(l.Ulimits) > 0 {
		unsupported = append(unsupported, "limits other than memory, cpus and pids")
	}
	if len(unsupported) > 0 {
		return CreateRequest{}, fmt.Errorf("%w: a berth server does not take %s from a client: its configuration sets them",
			sandbox.ErrInvalidSpec, strings.Join(unsupported, ", "))
	}
	req := CreateRequest{
		Image:        spec.Image.Base,
		RuntimeImage: spec.Image.Runtime,
		Name:         spec.Name,
		Env:          spec.Env,
		Labels:       spec.Labels,
		Network:      spec.Network,
		Networks:     spec.Networks,
		Memory:       Size(l.Memory),
		CPUs:         float64(l.NanoCPUs) / 1e9,
		PidsLimit:    l.PidsLimit,
		Volumes:      spec.Volumes,
		Tmpfs:        spec.Tmpfs,
		Publish:      spec.Publish,
		VSCode:       spec.VSCode,
		AppPorts:     spec.AppPorts,
		Timeout:      Duration(spec.Timeout),

		SecurityPolicy: spec.SecurityPolicy,
	}
	if spec.UseHostNetwork {
		req.Network = sandbox.NetworkHost
	}
	if spec.UserID != 0 {
		uid := spec.UserID
		req.UserID = &uid
	}
	if spec.ReadOnlyRootfs {
		ro := true
		req.ReadOnly = &ro
	}
	if spec.GPUs.Enabled {
		req.GPUs = "all"
		if len(spec.GPUs.DeviceIDs) > 0 {
			req.GPUs = strings.Join(spec.GPUs.DeviceIDs, ",")
		}
	}
	return req, nil
}
