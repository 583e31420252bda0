package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	berthclient "github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/dockertest"
)

// A real shell in a real sandbox, through a real server under deny: a
// dangerous line typed into the terminal is erased and never runs (the
// file it would have deleted first survives); a harmless one runs.
func TestSecurityPTYEndToEnd(t *testing.T) {
	c := newCLI(t)
	c.addConfig("[security]\npolicy = \"deny\"\n")
	srv := startServer(t, c, buildBerth(t, t.TempDir()))
	t.Setenv("BERTH_HOST", "http://"+srv.addr)
	id := strings.TrimSpace(c.ok("create", "--label", dockertest.Label+"="+env.RunID))
	t.Cleanup(func() { c.run("--host", "", "rm", "-f", id) })
	c.ok("exec", id, "--", "sh", "-c", "touch /workspace/keep /workspace/drop")

	bc, err := berthclient.New("http://"+srv.addr, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pty, err := bc.Agent(id).DialPTY(ctx, agentapi.PTYOptions{Cmd: "sh"})
	if err != nil {
		t.Fatalf("terminal through the server: %v", err)
	}
	defer pty.Close()
	var (
		mu    sync.Mutex
		shown bytes.Buffer
		ended error
	)
	got := make(chan struct{}, 1)
	text := func() string { mu.Lock(); defer mu.Unlock(); return shown.String() }
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := pty.Read(buf)
			mu.Lock()
			shown.Write(buf[:n])
			ended = err
			mu.Unlock()
			select {
			case got <- struct{}{}:
			default:
			}
			if err != nil {
				close(got)
				return
			}
		}
	}()
	// waitShown waits until the terminal has shown want (the shell's
	// output; $((...)) keeps the echo of the typed line from matching).
	waitShown := func(want string) {
		t.Helper()
		for !strings.Contains(text(), want) {
			select {
			case _, ok := <-got:
				if !ok && !strings.Contains(text(), want) {
					t.Fatalf("the terminal ended before showing %q:\n%s", want, text())
				}
			case <-ctx.Done():
				t.Fatalf("the terminal never showed %q:\n%s", want, text())
			}
		}
	}
	if _, err := pty.Write([]byte("rm -rf /workspace/keep; rm -rf /\r")); err != nil {
		t.Fatal(err)
	}
	if _, err := pty.Write([]byte("rm -f /workspace/drop; echo done-$((20+22))\r")); err != nil {
		t.Fatal(err)
	}
	waitShown("done-42")
	if !strings.Contains(text(), "refused by the security policy") || !strings.Contains(shown.String(), "rm-root") {
		t.Errorf("the terminal does not show the refusal:\n%s", text())
	}
	if out := c.ok("exec", id, "--", "ls", "/workspace"); out != "keep\n" {
		t.Errorf("/workspace holds %q, want keep only: the refused line ran, or the allowed one did not", out)
	}
	if _, err := pty.Write([]byte("exit 3\r")); err != nil {
		t.Fatal(err)
	}
	for range got {
	}
	mu.Lock()
	if ended != io.EOF {
		t.Errorf("terminal end: %v", ended)
	}
	mu.Unlock()
	if code, ok := pty.ExitCode(); !ok || code != 3 {
		t.Errorf("shell exit %d %v, want 3", code, ok)
	}
	out := c.ok("audit", "--sandbox", id, "-o", "json")
	for _, want := range []string{`"pty_input"`, `"denied"`, "rm -rf /workspace/keep; rm -rf /", "rm -f /workspace/drop"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit trail lacks %s:\n%s", want, out)
		}
	}
}

// Against a real session through a real server under deny: after `cd /`,
// `rm -rf *` is refused, and what it would have deleted first survives.
func TestSecuritySessionDirectoryEndToEnd(t *testing.T) {
	c := newCLI(t)
	c.addConfig("[security]\npolicy = \"deny\"\n")
	srv := startServer(t, c, buildBerth(t, t.TempDir()))
	t.Setenv("BERTH_HOST", "http://"+srv.addr)
	id := strings.TrimSpace(c.ok("create", "--label", dockertest.Label+"="+env.RunID))
	t.Cleanup(func() { c.run("--host", "", "rm", "-f", id) })
	c.ok("exec", id, "--", "sh", "-c", "touch /workspace/keep")
	if out := c.ok("exec", "--session", "s", id, "--", "cd / && pwd"); out != "/\n" {
		t.Fatalf("cd / in the session: %q", out)
	}
	_, errs, code := c.run("exec", "--session", "s", id, "--", "rm -rf *")
	if code == 0 || !strings.Contains(errs, "rm-root") {
		t.Errorf("rm -rf * after cd /: exit %d, %q; want a refusal naming rm-root", code, errs)
	}
	if out := c.ok("exec", id, "--", "ls", "/workspace"); out != "keep\n" {
		t.Errorf("/workspace holds %q: the refused command ran", out)
	}
	// In the workdir the same command is fine.
	c.ok("exec", "--session", "s", id, "--", "cd /workspace && mkdir -p build && cd build && touch x")
	c.ok("exec", "--session", "s", id, "--", "rm -rf *")
}
