package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/berth-dev/berth/internal/dockertest"
	"github.com/berth-dev/berth/internal/sandbox"
)

// Eight berth processes creating sandboxes at once, on a small port range
// of which one port is held by a listener that is not berth's, never share
// a port and never take the held one.
func TestConcurrentCreatesAcrossProcesses(t *testing.T) {
	env.Require(t)
	env.RequireImage(t, dockertest.BusyboxImage)
	if testing.Short() {
		t.Skip("creates 24 sandboxes")
	}
	dir := t.TempDir()
	bin := buildBerth(t, dir)
	// A foreign listener on one port of the range.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	held := ln.Addr().(*net.TCPAddr).Port
	lo := held - 20
	cfg := filepath.Join(dir, "berth.toml")
	body := fmt.Sprintf("[sandbox]\nbase_container_image = %q\nagent_port_range = \"%d-%d\"\n", dockertest.BusyboxImage, lo, held+20)
	if err := os.WriteFile(cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	procEnv := append(os.Environ(), "BERTH_STATE_DIR="+filepath.Join(dir, "state"), "BERTH_AGENT_BINARY="+env.AgentBinary)

	const procs, each = 8, 3
	var mu sync.Mutex
	var records []sandbox.Sandbox
	var wg sync.WaitGroup
	for p := range procs {
		wg.Go(func() {
			for i := range each {
				cmd := exec.Command(bin, "--config", cfg, "create", "-o", "json", "--label", dockertest.Label+"="+env.RunID)
				cmd.Env = procEnv
				out, err := cmd.Output()
				if err != nil {
					stderr := ""
					if ee, ok := err.(*exec.ExitError); ok {
						stderr = string(ee.Stderr)
					}
					t.Errorf("process %d create %d: %v\n%s", p, i, err, stderr)
					continue
				}
				var sb sandbox.Sandbox
				if err := json.Unmarshal(out, &sb); err != nil {
					t.Errorf("process %d: %v in %q", p, err, out)
					continue
				}
				mu.Lock()
				records = append(records, sb)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Cleanup(func() {
		var ids []string
		for _, sb := range records {
			ids = append(ids, sb.ID)
		}
		cmd := exec.Command(bin, append([]string{"--config", cfg, "rm"}, ids...)...)
		cmd.Env = procEnv
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("rm: %v\n%s", err, out)
		}
	})
	seen := map[int]string{}
	for _, sb := range records {
		if len(sb.Ports) != 1 {
			t.Fatalf("sandbox %s ports %+v", sb.ID, sb.Ports)
		}
		p := sb.Ports[0].HostPort
		if other, dup := seen[p]; dup {
			t.Errorf("port %d given to both %s and %s", p, other, sb.ID)
		}
		seen[p] = sb.ID
		if p == held {
			t.Errorf("sandbox %s got port %d, held by a foreign listener", sb.ID, p)
		}
		if p < lo || p > held+20 {
			t.Errorf("port %d outside the range %d-%d", p, lo, held+20)
		}
	}
	if len(records) != procs*each {
		t.Errorf("%d sandboxes made, want %d", len(records), procs*each)
	}
}

// buildBerth compiles this command into dir and returns the binary's path.
func buildBerth(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "berth")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build berth: %v\n%s", err, out)
	}
	return bin
}
