package agent

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// ptyScreen collects what a terminal shows, in the background.
type ptyScreen struct {
	conn    *agentapi.PTYConn
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on new output
	done    chan struct{} // closed when Read ended
	err     error         // Read's last error, after done
}

// ptyDial opens a terminal and starts collecting its output. The terminal
// is closed when the test ends.
func ptyDial(t *testing.T, a *testAgent, opts agentapi.PTYOptions) *ptyScreen {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := a.client.DialPTY(ctx, opts)
	if err != nil {
		t.Fatalf("DialPTY %+v: %v", opts, err)
	}
	s := &ptyScreen{conn: conn, changed: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		b := make([]byte, 4096)
		for {
			n, err := conn.Read(b)
			s.mu.Lock()
			s.buf.Write(b[:n])
			close(s.changed)
			s.changed = make(chan struct{})
			s.mu.Unlock()
			if err != nil {
				s.err = err
				return
			}
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-s.done
	})
	return s
}

// waitFor waits until the output matches re and returns the submatches.
func (s *ptyScreen) waitFor(t *testing.T, re string) []string {
	t.Helper()
	rx := regexp.MustCompile(re)
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		m := rx.FindStringSubmatch(s.buf.String())
		out, ch := s.buf.String(), s.changed
		s.mu.Unlock()
		if m != nil {
			return m
		}
		select {
		case <-ch:
		case <-s.done:
			s.mu.Lock()
			out = s.buf.String()
			m = rx.FindStringSubmatch(out)
			s.mu.Unlock()
			if m != nil {
				return m
			}
			t.Fatalf("terminal ended (%v) without %q; it showed %q", s.err, re, out)
		case <-timeout.C:
			t.Fatalf("terminal never showed %q; it showed %q", re, out)
		}
	}
}

// waitExit waits for the end of the terminal and returns the exit code.
func (s *ptyScreen) waitExit(t *testing.T) int {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		t.Fatal("terminal did not end")
	}
	if !errors.Is(s.err, io.EOF) {
		t.Fatalf("terminal ended with %v, want io.EOF", s.err)
	}
	code, ok := s.conn.ExitCode()
	if !ok {
		t.Fatal("no exit code after EOF")
	}
	return code
}

func (s *ptyScreen) send(t *testing.T, text string) {
	t.Helper()
	if _, err := s.conn.Write([]byte(text)); err != nil {
		t.Fatalf("write %q: %v", text, err)
	}
}

func TestPTYEchoAndExitCode(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	s := ptyDial(t, a, agentapi.PTYOptions{})
	// The quotes keep the typed line (echoed by the terminal) from matching.
	s.send(t, "echo hel''lo-$((6*7))\n")
	s.waitFor(t, `hello-42`)
	s.send(t, "exit 3\n")
	if code := s.waitExit(t); code != 3 {
		t.Errorf("exit code %d, want 3", code)
	}
}

func TestPTYTTYAndTERM(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	s := ptyDial(t, a, agentapi.PTYOptions{Cmd: `tty; echo "term=$TERM"; exit 5`})
	s.waitFor(t, `/dev/pts/\d+`)
	s.waitFor(t, `term=xterm-256color`)
	if code := s.waitExit(t); code != 5 {
		t.Errorf("exit code %d, want 5", code)
	}
	env := ptyDial(t, a, agentapi.PTYOptions{Cmd: `echo "[$TERM $X]"`, Env: map[string]string{"TERM": "dumb", "X": "y"}})
	env.waitFor(t, `\[dumb y\]`)
	if code := env.waitExit(t); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
}

func TestPTYSizeAndResize(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	s := ptyDial(t, a, agentapi.PTYOptions{Cols: 91, Rows: 33})
	s.send(t, "stty size; echo s''ized\n")
	if m := s.waitFor(t, `(\d+) (\d+)\r?\nsized`); m[1] != "33" || m[2] != "91" {
		t.Errorf("initial size %s %s, want 33 91", m[1], m[2])
	}
	if err := s.conn.Resize(t.Context(), 120, 40); err != nil {
		t.Fatal(err)
	}
	// Messages are handled in order: the resize before the next line.
	s.send(t, "stty size; echo re''sized\n")
	if m := s.waitFor(t, `(\d+) (\d+)\r?\nresized`); m[1] != "40" || m[2] != "120" {
		t.Errorf("size after resize %s %s, want 40 120", m[1], m[2])
	}
	s.send(t, "exit\n")
	if code := s.waitExit(t); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// Closing the websocket kills the shell and its jobs, even jobs in process
// groups of their own.
func TestPTYCloseKillsSession(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	s := ptyDial(t, a, agentapi.PTYOptions{})
	s.send(t, "set -m; sleep 1000 & echo pids=$$,$!.\n")
	m := s.waitFor(t, `pids=(\d+),(\d+)\.`)
	shell, _ := strconv.Atoi(m[1])
	job, _ := strconv.Atoi(m[2])
	if err := s.conn.Close(); err != nil {
		t.Errorf("close: %v", err)
	}
	waitGone(t, shell)
	waitGone(t, job)
	a.waitProcsDone(t)
}

func TestPTYAgentCloseEndsTerminal(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	s := ptyDial(t, a, agentapi.PTYOptions{})
	s.send(t, "echo pid=$$.\n")
	pid, _ := strconv.Atoi(s.waitFor(t, `pid=(\d+)\.`)[1])
	a.srv.Close()
	waitGone(t, pid)
	if code := s.waitExit(t); code != 137 {
		t.Errorf("exit code %d, want 137 (SIGKILL)", code)
	}
	_, err := a.client.DialPTY(t.Context(), agentapi.PTYOptions{})
	bgAPIError(t, err, 503, agentapi.CodeUnavailable)
}

func TestPTYRequestErrors(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	for _, tc := range []struct {
		opts agentapi.PTYOptions
		word string
	}{
		{agentapi.PTYOptions{Cwd: "/no/such/dir"}, "/no/such/dir"},
		{agentapi.PTYOptions{Cols: 10001}, `"cols"`},
		{agentapi.PTYOptions{Env: map[string]string{"BERTH_AGENT_KEY": "x"}}, "BERTH_AGENT_KEY"},
	} {
		_, err := a.client.DialPTY(t.Context(), tc.opts)
		bgAPIError(t, err, 400, agentapi.CodeBadRequest, tc.word)
	}
	for q, word := range map[string]string{"?rows=0": `"rows"`, "?cols=x": `"cols"`, "?env=NOEQUALS": `"env"`, "": "websocket"} {
		status, _, body := call(t, "GET", a.url+agentapi.PathPTY+q, testKey, "")
		if status != 400 || !strings.Contains(body["message"].(string), word) {
			t.Errorf("%q: %d %v", q, status, body)
		}
	}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", a.url+agentapi.PathPTY, nil)
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("without key: %d", resp.StatusCode)
	}
}

func TestPTYStatSession(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{
		"1 (init) S 0 1 1 0 -1":             1,
		"42 (a b) c)) R 7 42 40 34816 42":   40,
		"42 (x) R 7":                        -1,
		"garbage":                           -1,
		"5 (sh) S 1 5 notanumber 0 0 0 0 0": -1,
	} {
		got, ok := ptyStatSession([]byte(in))
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("%q: %d, want %d", in, got, want)
		}
	}
}
