package image

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/sandbox"
)

// pollLock is how often a waiting process retries a build lock.
const pollLock = 100 * time.Millisecond

// Dockerfile renders the runtime image's Dockerfile.
func Dockerfile(base string, in Inputs, baseName string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "FROM %s\n", base)
	keys := make([]string, 0, len(in.BuildArgs))
	for k := range in.BuildArgs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(&b, "ARG %s\n", k)
	}
	fmt.Fprintf(&b, "COPY berth-agent %s\n", AgentPath)
	if strings.TrimSpace(in.ExtraDeps) != "" {
		// JSON form keeps the snippet exactly as written (newlines included)
		// and runs it with sh -c like the shell form would.
		cmd, _ := json.Marshal([]string{"/bin/sh", "-c", in.ExtraDeps})
		fmt.Fprintf(&b, "RUN %s\n", cmd)
	}
	labels, _ := json.Marshal(baseName)
	fmt.Fprintf(&b, "LABEL %s=\"true\" %s=%s %s=%q %s=%q\n",
		LabelRuntime, LabelBase, labels, LabelBaseID, in.BaseID, LabelAgentSum, in.AgentSum)
	return b.String()
}

// buildContext is the tar stream sent to the engine: the Dockerfile and the
// agent binary, nothing else.
func buildContext(dockerfile string, agentPath string) (io.Reader, error) {
	agent, err := os.ReadFile(agentPath)
	if err != nil {
		return nil, fmt.Errorf("read berth-agent binary: %w", err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Unix(0, 0)
	files := []struct {
		name string
		mode int64
		data []byte
	}{
		{"Dockerfile", 0o644, []byte(dockerfile)},
		{"berth-agent", 0o755, agent},
	}
	for _, f := range files {
		hdr := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: now, Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return &buf, nil
}

func (r *Resolver) build(ctx context.Context, spec sandbox.ImageSpec, in Inputs, tag string) error {
	start := time.Now()
	fmt.Fprintf(r.opts.Progress, "building runtime image %s from %s\n", tag, spec.Base)
	bctx, err := buildContext(Dockerfile(spec.Base, in, spec.Base), r.opts.AgentBinary)
	if err != nil {
		return fmt.Errorf("%w: build %s: %v", sandbox.ErrImage, tag, err)
	}
	args := make(map[string]*string, len(in.BuildArgs))
	for k, v := range in.BuildArgs {
		args[k] = &v
	}
	res, err := r.docker.ImageBuild(ctx, bctx, client.ImageBuildOptions{
		Tags:        []string{tag},
		Remove:      true,
		ForceRemove: true,
		NoCache:     spec.ForceRebuild,
		BuildArgs:   args,
	})
	if err != nil {
		return fmt.Errorf("%w: build %s: %v", sandbox.ErrImage, tag, err)
	}
	defer res.Body.Close()
	// Keep the last lines of output to explain a failure.
	var tail []string
	dec := json.NewDecoder(res.Body)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			return fmt.Errorf("%w: build %s: reading build output: %v", sandbox.ErrImage, tag, err)
		}
		if m.Error != nil {
			return fmt.Errorf("%w: build %s from %s failed: %s\n%s", sandbox.ErrImage, tag, spec.Base, m.Error.Message, strings.Join(tail, "\n"))
		}
		if m.Stream != "" {
			io.WriteString(r.opts.Progress, m.Stream)
			for _, line := range strings.Split(strings.TrimRight(m.Stream, "\n"), "\n") {
				tail = append(tail, line)
			}
			if len(tail) > 20 {
				tail = tail[len(tail)-20:]
			}
		}
	}
	if _, err := r.docker.ImageInspect(ctx, tag); err != nil {
		return fmt.Errorf("%w: build %s finished but the image is missing: %v", sandbox.ErrImage, tag, err)
	}
	r.log.Info("built runtime image", "tag", tag, "base", spec.Base, "duration", time.Since(start).Round(time.Millisecond))
	return nil
}

// Info describes one runtime image.
type Info struct {
	Ref       string    `json:"ref"`
	ID        string    `json:"id"`
	Base      string    `json:"base"`
	Size      int64     `json:"size"`
	CreatedAt time.Time `json:"created_at"`
}

// List returns the runtime images berth has built.
func (r *Resolver) List(ctx context.Context) ([]Info, error) {
	res, err := r.docker.ImageList(ctx, client.ImageListOptions{Filters: make(client.Filters).Add("label", LabelRuntime+"=true")})
	if err != nil {
		return nil, fmt.Errorf("list runtime images: %w", err)
	}
	var out []Info
	for _, s := range res.Items {
		ref := "<none>"
		if len(s.RepoTags) > 0 {
			ref = s.RepoTags[0]
		}
		out = append(out, Info{Ref: ref, ID: s.ID, Base: s.Labels[LabelBase], Size: s.Size, CreatedAt: time.Unix(s.Created, 0).UTC()})
	}
	slices.SortFunc(out, func(a, b Info) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}
