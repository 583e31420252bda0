// Package dockertest helps tests that need a real Docker engine: it connects
// or skips (fails under REQUIRE_DOCKER=1), builds berth-agent once per test
// binary, labels every object a test makes, and sweeps the engine of this
// run's objects when the tests end.
package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
)

// Label marks every container, volume and network a test makes; its value
// is the test binary's run id.
const Label = "berth.test-run"

// Images the tests use; scripts/test-images.sh makes them without a registry.
const (
	BusyboxImage = "busybox:berth-test"
	DebianImage  = "debian:bookworm-slim"
)

// Env is what Main prepared for the tests of one package.
type Env struct {
	Client      *client.Client // nil when no engine answers (tests skip)
	AgentBinary string         // a static berth-agent built from this tree
	RunID       string         // value of Label for this test binary
	StateDir    string         // a private state dir (port locks, name locks)
	skipReason  string
}

// Main sets up Env, runs the tests, then removes whatever this run left on
// the engine and reports it: a test that leaks fails the package.
// Use it from TestMain: os.Exit(dockertest.Main(m, &env)).
func Main(m *testing.M, env *Env) int {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	env.RunID = hex.EncodeToString(b)
	dir, err := os.MkdirTemp("", "berth-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "dockertest:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	env.StateDir = filepath.Join(dir, "state")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	c, err := client.New(client.FromEnv)
	if err == nil {
		_, err = c.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	}
	cancel()
	if err != nil {
		env.skipReason = fmt.Sprintf("no Docker engine: %v", err)
		if os.Getenv("REQUIRE_DOCKER") == "1" {
			fmt.Fprintln(os.Stderr, "dockertest: REQUIRE_DOCKER=1 but", env.skipReason)
			return 1
		}
	} else {
		env.Client = c
		defer c.Close()
	}
	env.AgentBinary = filepath.Join(dir, "berth-agent")
	if err := buildAgent(env.AgentBinary); err != nil {
		fmt.Fprintln(os.Stderr, "dockertest: build berth-agent:", err)
		return 1
	}
	code := m.Run()
	if env.Client != nil {
		if n := sweep(env.Client, env.RunID); n > 0 {
			fmt.Fprintf(os.Stderr, "dockertest: tests left %d containers labelled %s=%s on the engine (now removed)\n", n, Label, env.RunID)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// Require returns the engine client, or skips the test when there is none.
func (e *Env) Require(t testing.TB) *client.Client {
	t.Helper()
	if e.Client == nil {
		if os.Getenv("REQUIRE_DOCKER") == "1" {
			t.Fatalf("REQUIRE_DOCKER=1 but %s", e.skipReason)
		}
		t.Skip(e.skipReason)
	}
	return e.Client
}

// RequireImage skips (or fails under REQUIRE_DOCKER=1) when ref is absent,
// naming the script that makes it.
func (e *Env) RequireImage(t testing.TB, ref string) {
	t.Helper()
	c := e.Require(t)
	if _, err := c.ImageInspect(context.Background(), ref); err != nil {
		msg := fmt.Sprintf("image %s is missing: run scripts/test-images.sh (%v)", ref, err)
		if os.Getenv("REQUIRE_DOCKER") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// Labels returns the labels every test object carries.
func (e *Env) Labels() map[string]string { return map[string]string{Label: e.RunID} }

// Containers lists this run's containers (all states), for leak checks.
func (e *Env) Containers(t testing.TB) []string {
	t.Helper()
	res, err := e.Client.ContainerList(context.Background(), client.ContainerListOptions{
		All: true, Filters: make(client.Filters).Add("label", Label+"="+e.RunID),
	})
	if err != nil {
		t.Fatalf("list test containers: %v", err)
	}
	ids := make([]string, len(res.Items))
	for i, c := range res.Items {
		ids[i] = c.ID
	}
	return ids
}

func sweep(c *client.Client, runID string) int {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := c.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: make(client.Filters).Add("label", Label+"="+runID)})
	if err != nil {
		return 0
	}
	for _, it := range res.Items {
		_, _ = c.ContainerRemove(ctx, it.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	}
	n := len(res.Items)
	// Named volumes outlive their sandboxes by design; a test run's go now.
	vols, err := c.VolumeList(ctx, client.VolumeListOptions{Filters: make(client.Filters).Add("label", Label+"="+runID)})
	if err == nil {
		for _, v := range vols.Items {
			_, _ = c.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
		}
	}
	return n
}

// buildAgent compiles cmd/berth-agent as a static binary.
func buildAgent(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", out, "./cmd/berth-agent")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+runtime.GOARCH)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, strings.TrimSpace(string(b)))
	}
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the berth module")
	}
	return filepath.Dir(mod), nil
}
