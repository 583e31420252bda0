package image

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/sandbox"
)

var env dockertest.Env

func TestMain(m *testing.M) { os.Exit(dockertest.Main(m, &env)) }

func TestTagDependsOnEveryInput(t *testing.T) {
	base := Inputs{BaseID: "sha256:aa", AgentSum: "bb", ExtraDeps: "apt-get install -y git", BuildArgs: map[string]string{"A": "1", "B": "2"}}
	same := base
	same.BuildArgs = map[string]string{"B": "2", "A": "1"}
	if base.Tag() != same.Tag() {
		t.Errorf("tag depends on map order")
	}
	if !strings.HasPrefix(base.Tag(), "berth-runtime:") || len(base.Tag()) != len("berth-runtime:")+16 {
		t.Errorf("tag %q: want berth-runtime:<16 hex>", base.Tag())
	}
	changes := []func(*Inputs){
		func(i *Inputs) { i.BaseID = "sha256:ab" },
		func(i *Inputs) { i.AgentSum = "bc" },
		func(i *Inputs) { i.ExtraDeps += " curl" },
		func(i *Inputs) { i.BuildArgs = map[string]string{"A": "1", "B": "3"} },
		func(i *Inputs) { i.BuildArgs = map[string]string{"A": "1"} },
		// Same bytes split differently across fields must not collide.
		func(i *Inputs) { i.BuildArgs = map[string]string{"A": "1\narg=1:B=1:2"} },
	}
	for n, change := range changes {
		in := base
		in.BuildArgs = map[string]string{"A": "1", "B": "2"}
		change(&in)
		if in.Tag() == base.Tag() {
			t.Errorf("change %d did not change the tag", n)
		}
	}
}

func TestDockerfile(t *testing.T) {
	df := Dockerfile("debian:bookworm-slim", Inputs{BaseID: "sha256:x", AgentSum: "y", ExtraDeps: "echo 'a b'\necho c", BuildArgs: map[string]string{"V": "1"}}, "debian:bookworm-slim")
	for _, want := range []string{"FROM debian:bookworm-slim\n", "ARG V\n", "COPY berth-agent /opt/berth/berth-agent\n", `RUN ["/bin/sh","-c","echo 'a b'\necho c"]`, `berth.base="debian:bookworm-slim"`} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q:\n%s", want, df)
		}
	}
	if strings.Contains(Dockerfile("b", Inputs{}, "b"), "RUN") {
		t.Error("RUN step without extra deps")
	}
}

// countingDocker counts builds on the real engine.
type countingDocker struct {
	Docker
	builds atomic.Int32
}

func (c *countingDocker) ImageBuild(ctx context.Context, r io.Reader, o client.ImageBuildOptions) (client.ImageBuildResult, error) {
	c.builds.Add(1)
	return c.Docker.ImageBuild(ctx, r, o)
}

func TestConcurrentResolvesBuildOnce(t *testing.T) {
	c := env.Require(t)
	env.RequireImage(t, dockertest.BusyboxImage)
	lockDir := t.TempDir()
	counter := &countingDocker{Docker: c}
	// Two resolvers share a lock dir, as two berth processes would.
	r1 := NewResolver(counter, Options{AgentBinary: env.AgentBinary, LockDir: lockDir})
	r2 := NewResolver(counter, Options{AgentBinary: env.AgentBinary, LockDir: lockDir})
	// Unique extra deps give a tag no other test has built.
	spec := sandbox.ImageSpec{
		Base:      dockertest.BusyboxImage,
		ExtraDeps: "echo \"$GREETING\" > /opt/berth/greeting # " + env.RunID,
		BuildArgs: map[string]string{"GREETING": "built once"},
	}
	var wg sync.WaitGroup
	results := make([]Result, 6)
	errs := make([]error, 6)
	for i := range results {
		r := r1
		if i%2 == 1 {
			r = r2
		}
		wg.Go(func() { results[i], errs[i] = r.Resolve(context.Background(), spec) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("resolve %d: %v", i, err)
		}
	}
	ref := results[0].Ref
	t.Cleanup(func() { env.RemoveImage(t, ref) })
	for i, r := range results {
		if r.Ref != ref {
			t.Errorf("resolve %d: %s, want %s", i, r.Ref, ref)
		}
	}
	if n := counter.builds.Load(); n != 1 {
		t.Errorf("%d builds for one tag, want 1", n)
	}
	// The build step ran with its build arg, and the agent is in place.
	ctx := context.Background()
	out := runInImage(t, ref, "cat /opt/berth/greeting; test -x /opt/berth/berth-agent && echo agent-ok")
	if out != "built once\nagent-ok\n" {
		t.Errorf("image content: %q", out)
	}
	info, err := c.ImageInspect(ctx, ref)
	if err != nil || info.Config.Labels[LabelBase] != dockertest.BusyboxImage || info.Config.Labels[LabelRuntime] != "true" {
		t.Errorf("image labels: %v %v", info.Config, err)
	}
	// Listed among runtime images; a rebuild only on force.
	list, err := r1.List(ctx)
	if err != nil || !containsRef(list, ref) {
		t.Errorf("List() = %v, %v; want %s in it", list, err, ref)
	}
	if res, err := r1.Resolve(ctx, spec); err != nil || res.Built || counter.builds.Load() != 1 {
		t.Errorf("second resolve: %+v %v, builds %d", res, err, counter.builds.Load())
	}
	spec.ForceRebuild = true
	if res, err := r1.Resolve(ctx, spec); err != nil || !res.Built || res.Ref != ref || counter.builds.Load() != 2 {
		t.Errorf("forced resolve: %+v %v, builds %d", res, err, counter.builds.Load())
	}
}

func containsRef(list []Info, ref string) bool {
	for _, i := range list {
		if i.Ref == ref {
			return true
		}
	}
	return false
}

// runInImage runs a shell line in a throwaway container of ref.
func runInImage(t *testing.T, ref, line string) string {
	t.Helper()
	c := env.Client
	ctx := context.Background()
	res, err := c.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: containerConfig(ref, line, env.Labels()),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.ContainerRemove(ctx, res.ID, client.ContainerRemoveOptions{Force: true})
	wait := c.ContainerWait(ctx, res.ID, client.ContainerWaitOptions{Condition: "next-exit"})
	if _, err := c.ContainerStart(ctx, res.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-wait.Result:
	case err := <-wait.Error:
		t.Fatal(err)
	}
	logs, err := c.ContainerLogs(ctx, res.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	var out strings.Builder
	if err := demux(&out, logs); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

func TestMissingImageIsExplained(t *testing.T) {
	c := env.Require(t)
	r := NewResolver(c, Options{AgentBinary: env.AgentBinary, LockDir: t.TempDir()})
	// A registry on a closed loopback port: the pull fails at once, and no
	// traffic leaves the machine.
	missing := "127.0.0.1:1/berth-no-such-image:" + env.RunID
	for _, spec := range []sandbox.ImageSpec{{Base: missing}, {Runtime: missing}} {
		_, err := r.Resolve(context.Background(), spec)
		if !errors.Is(err, sandbox.ErrImage) {
			t.Fatalf("Resolve(%+v) = %v, want ErrImage", spec, err)
		}
		for _, w := range []string{missing, "docker load", "scripts/test-images.sh"} {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("error lacks %q: %v", w, err)
			}
		}
	}
}

func TestMissingAgentBinary(t *testing.T) {
	c := env.Require(t)
	env.RequireImage(t, dockertest.BusyboxImage)
	r := NewResolver(c, Options{AgentBinary: filepath.Join(t.TempDir(), "nope")})
	_, err := r.Resolve(context.Background(), sandbox.ImageSpec{Base: dockertest.BusyboxImage})
	if !errors.Is(err, sandbox.ErrImage) || !strings.Contains(err.Error(), "BERTH_AGENT_BINARY") {
		t.Fatalf("Resolve() = %v", err)
	}
}
