package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"testing"

	"github.com/moby/moby/api/types/jsonstream"
	"github.com/moby/moby/client"
)

// BuildImage builds an image tagged tag from a Dockerfile and files (name →
// content, mode 0755), and removes it when the test ends.
func (e *Env) BuildImage(t testing.TB, tag, dockerfile string, files map[string]string) {
	t.Helper()
	c := e.Require(t)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	files["Dockerfile"] = dockerfile
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	res, err := c.ImageBuild(ctx, &buf, client.ImageBuildOptions{Tags: []string{tag}, Remove: true, ForceRemove: true, Labels: e.Labels()})
	if err != nil {
		t.Fatalf("build %s: %v", tag, err)
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var m jsonstream.Message
		if err := dec.Decode(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("build %s: %v", tag, err)
		}
		if m.Error != nil {
			t.Fatalf("build %s: %s", tag, m.Error.Message)
		}
	}
	t.Cleanup(func() { e.RemoveImage(t, tag) })
}

// RemoveImage removes an image and its untagged parents.
func (e *Env) RemoveImage(t testing.TB, ref string) {
	t.Helper()
	_, err := e.Client.ImageRemove(context.Background(), ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	if err != nil {
		t.Errorf("remove image %s: %v", ref, err)
	}
}
