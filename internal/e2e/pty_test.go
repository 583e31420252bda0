package e2e

import (
	"bytes"
	"context"
	"errors"
	"io"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/dockertest"
)

// ptyTerm collects what a terminal in a sandbox shows.
type ptyTerm struct {
	conn    *agentapi.PTYConn
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{}
	done    chan struct{}
	err     error
}

func ptyOpen(t *testing.T, b *box, opts agentapi.PTYOptions) *ptyTerm {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	conn, err := b.agent.DialPTY(ctx, opts)
	if err != nil {
		t.Fatalf("DialPTY: %v", err)
	}
	pt := &ptyTerm{conn: conn, changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(pt.done)
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			pt.mu.Lock()
			pt.buf.Write(buf[:n])
			close(pt.changed)
			pt.changed = make(chan struct{})
			pt.mu.Unlock()
			if err != nil {
				pt.err = err
				return
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-pt.done
	})
	return pt
}

// expect waits until the screen matches re and returns the submatches.
func (pt *ptyTerm) expect(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.NewTimer(30 * time.Second)
	defer timeout.Stop()
	for {
		pt.mu.Lock()
		out, ch := pt.buf.String(), pt.changed
		pt.mu.Unlock()
		if m := rx.FindStringSubmatch(out); m != nil {
			return m
		}
		select {
		case <-ch:
		case <-pt.done:
			pt.mu.Lock()
			out = pt.buf.String()
			pt.mu.Unlock()
			if m := rx.FindStringSubmatch(out); m != nil {
				return m
			}
			t.Fatalf("terminal ended (%v) without %q: %q", pt.err, re, out)
		case <-timeout.C:
			t.Fatalf("terminal never showed %q: %q", re, out)
		}
	}
}

func (pt *ptyTerm) typeLine(t *testing.T, line string) {
	t.Helper()
	if _, err := pt.conn.Write([]byte(line + "\n")); err != nil {
		t.Fatalf("type %q: %v", line, err)
	}
}

func TestPTYInContainer(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)
	pt := ptyOpen(t, b, agentapi.PTYOptions{Cols: 80, Rows: 24})
	// The terminal echoes typed lines: expectations never match those.
	pt.typeLine(t, `tty; echo "T=$TERM U=$(id -un) D=$PWD"`)
	pt.expect(t, `/dev/pts/\d+`)
	pt.expect(t, `T=xterm-256color U=berth D=/workspace`)
	// /dev/tty belongs to the user: programs that open it (less, sudo) work.
	pt.typeLine(t, `echo via''tty > /dev/tty`)
	pt.expect(t, `viatty`)

	pt.typeLine(t, `stty size; echo si''zed`)
	if m := pt.expect(t, `(\d+) (\d+)\r?\nsized`); m[1] != "24" || m[2] != "80" {
		t.Errorf("size %s %s, want 24 80", m[1], m[2])
	}
	if err := pt.conn.Resize(t.Context(), 132, 50); err != nil {
		t.Fatal(err)
	}
	pt.typeLine(t, `stty size; echo re''sized`)
	if m := pt.expect(t, `(\d+) (\d+)\r?\nresized`); m[1] != "50" || m[2] != "132" {
		t.Errorf("size after resize %s %s, want 50 132", m[1], m[2])
	}

	pt.typeLine(t, "exit 3")
	select {
	case <-pt.done:
	case <-time.After(30 * time.Second):
		t.Fatal("terminal did not end after exit")
	}
	if !errors.Is(pt.err, io.EOF) {
		t.Errorf("read ended with %v, want io.EOF", pt.err)
	}
	if code, ok := pt.conn.ExitCode(); !ok || code != 3 {
		t.Errorf("exit code %d (%v), want 3", code, ok)
	}
}

func TestPTYCloseKillsShellInContainer(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)
	pt := ptyOpen(t, b, agentapi.PTYOptions{})
	pt.typeLine(t, `sleep 1000 & echo "pids=$$,$!."`)
	m := pt.expect(t, `pids=(\d+),(\d+)\.`)
	if err := pt.conn.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	for _, s := range m[1:] {
		pid, _ := strconv.Atoi(s)
		b.procWaitGone(t, pid)
	}
}
