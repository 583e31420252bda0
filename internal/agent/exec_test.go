package agent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

func TestExecArgv(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	r := a.exec(t, agentapi.ExecRequest{Argv: []string{"echo", "hello", "wide world"}})
	if got := string(r.stdout); got != "hello wide world\n" {
		t.Errorf("stdout = %q", got)
	}
	if r.exit.ExitCode != 0 || r.exit.Signal != "" || r.exit.TimedOut {
		t.Errorf("exit = %+v, want code 0", r.exit)
	}
	if first := r.events[0]; first.Type != agentapi.EventStart || first.PID <= 0 {
		t.Errorf("first event = %+v, want start with a pid", first)
	}
}

func TestExecShellString(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	r := a.exec(t, agentapi.ExecRequest{Command: `x=$((1+2)); echo "$x"; echo oops >&2; exit 7`})
	if string(r.stdout) != "3\n" || string(r.stderr) != "oops\n" {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
	if r.exit.ExitCode != 7 {
		t.Errorf("exit code = %d, want 7", r.exit.ExitCode)
	}
}

func TestExecUsesBashWhenPresent(t *testing.T) {
	t.Parallel()
	if checkExecutable("/bin/bash") != nil {
		t.Skip("no /bin/bash here")
	}
	a := newTestAgent(t, nil)
	r := a.exec(t, agentapi.ExecRequest{Command: `echo "${BASH_VERSION:+bash}"`})
	if string(r.stdout) != "bash\n" {
		t.Errorf("stdout = %q, want bash", r.stdout)
	}
	b := newTestAgent(t, func(o *Options) { o.Shell = "/bin/sh" })
	if b.srv.shell != "/bin/sh" {
		t.Errorf("shell = %q", b.srv.shell)
	}
}

func TestExecEventOrder(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	const n = 300
	r := a.exec(t, agentapi.ExecRequest{Command: `i=0; while [ $i -lt ` + strconv.Itoa(n) + ` ]; do echo out$i; echo err$i >&2; i=$((i+1)); done`})
	if len(r.events) < 3 {
		t.Fatalf("only %d events", len(r.events))
	}
	if r.events[0].Type != agentapi.EventStart {
		t.Errorf("first event is %q", r.events[0].Type)
	}
	last := r.events[len(r.events)-1]
	if last.Type != agentapi.EventExit {
		t.Errorf("last event is %q", last.Type)
	}
	for i, ev := range r.events[1 : len(r.events)-1] {
		if ev.Type != agentapi.EventStdout && ev.Type != agentapi.EventStderr {
			t.Errorf("event %d is %q between start and exit", i+1, ev.Type)
		}
		if len(ev.Data) == 0 {
			t.Errorf("event %d has no data", i+1)
		}
	}
	var wantOut, wantErr strings.Builder
	for i := range n {
		wantOut.WriteString("out" + strconv.Itoa(i) + "\n")
		wantErr.WriteString("err" + strconv.Itoa(i) + "\n")
	}
	if string(r.stdout) != wantOut.String() {
		t.Errorf("stdout is out of order or incomplete (%d bytes, want %d)", len(r.stdout), wantOut.Len())
	}
	if string(r.stderr) != wantErr.String() {
		t.Errorf("stderr is out of order or incomplete (%d bytes, want %d)", len(r.stderr), wantErr.Len())
	}
}

// Output must arrive while the command still runs, not at its end.
func TestExecStreamsOutputAsProduced(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	errSeen := errors.New("saw first line")
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	var pid int
	_, err := a.client.Exec(ctx, agentapi.ExecRequest{Command: "echo first; exec sleep 1000"},
		func(ev agentapi.ExecEvent) error {
			switch ev.Type {
			case agentapi.EventStart:
				pid = ev.PID
			case agentapi.EventStdout:
				if string(ev.Data) == "first\n" {
					return errSeen
				}
			case agentapi.EventExit:
				t.Errorf("exit arrived before the output: %+v", ev)
			}
			return nil
		})
	if !errors.Is(err, errSeen) {
		t.Fatalf("Exec = %v, want the callback's error", err)
	}
	// Leaving the stream is a disconnect: the agent kills the command.
	a.waitProcsDone(t)
	waitGone(t, pid)
}

func TestExecExitCodes(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	tests := []struct {
		command string
		code    int
		signal  string
	}{
		{"exit 0", 0, ""},
		{"exit 1", 1, ""},
		{"exit 255", 255, ""},
		{"false", 1, ""},
		{"kill -9 $$", 137, "SIGKILL"},
		{"kill -TERM $$", 143, "SIGTERM"},
		{"kill -INT $$", 130, "SIGINT"},
		{"no-such-command-in-shell", 127, ""},
	}
	for _, tt := range tests {
		t.Run(tt.command, func(t *testing.T) {
			r := a.exec(t, agentapi.ExecRequest{Command: tt.command})
			if r.exit.ExitCode != tt.code || r.exit.Signal != tt.signal || r.exit.TimedOut {
				t.Errorf("exit = %+v, want code %d signal %q", r.exit, tt.code, tt.signal)
			}
			if agentapi.ExitCode(r.exit) != tt.code {
				t.Errorf("ExitCode = %d, want %d", agentapi.ExitCode(r.exit), tt.code)
			}
		})
	}
}

func TestExecTimeoutKillsWholeGroup(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	start := time.Now()
	r := a.exec(t, agentapi.ExecRequest{
		Command:   `sleep 1000 & echo $!; sleep 1000`,
		TimeoutMS: 300,
	})
	if !r.exit.TimedOut || r.exit.ExitCode != 137 || r.exit.Signal != "SIGKILL" {
		t.Errorf("exit = %+v, want timed out, 137, SIGKILL", r.exit)
	}
	if agentapi.ExitCode(r.exit) != agentapi.TimeoutExitCode {
		t.Errorf("ExitCode = %d, want %d", agentapi.ExitCode(r.exit), agentapi.TimeoutExitCode)
	}
	if el := time.Since(start); el < 300*time.Millisecond || el > 20*time.Second {
		t.Errorf("took %v for a 300 ms timeout", el)
	}
	if r.exit.DurationMS < 300 {
		t.Errorf("duration_ms = %d, want >= 300", r.exit.DurationMS)
	}
	grandchild, err := strconv.Atoi(strings.TrimSpace(string(r.stdout)))
	if err != nil {
		t.Fatalf("stdout %q is not the grandchild's pid", r.stdout)
	}
	waitGone(t, grandchild)
}

func TestExecClientDisconnectKillsProcess(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var pid, grandchild int
	_, err := a.client.Exec(ctx, agentapi.ExecRequest{Command: `sleep 1000 & echo $!; sleep 1000`},
		func(ev agentapi.ExecEvent) error {
			switch ev.Type {
			case agentapi.EventStart:
				pid = ev.PID
			case agentapi.EventStdout:
				n, err := strconv.Atoi(strings.TrimSpace(string(ev.Data)))
				if err != nil {
					return err
				}
				grandchild = n
				cancel()
			}
			return nil
		})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Exec = %v, want context.Canceled", err)
	}
	if pid == 0 || grandchild == 0 {
		t.Fatalf("pid %d, grandchild %d: missing start event or output", pid, grandchild)
	}
	a.waitProcsDone(t)
	waitGone(t, pid)
	// The background sleep was in the same group: it is gone too.
	waitGone(t, grandchild)
}

func TestExecLargeOutputIntact(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	const n = 10 << 20
	r := a.exec(t, agentapi.ExecRequest{
		Argv: helperArgv(t),
		Env:  map[string]string{helperEnv: "pattern " + strconv.Itoa(n)},
	})
	if r.exit.ExitCode != 0 || r.exit.DroppedBytes != 0 {
		t.Fatalf("exit = %+v, stderr %q", r.exit, r.stderr)
	}
	if len(r.stdout) != n {
		t.Fatalf("got %d bytes, want %d", len(r.stdout), n)
	}
	if !bytes.Equal(r.stdout, pattern(n)) {
		t.Fatal("output differs from what the program wrote")
	}
}

func TestExecBinaryOutputIntact(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	// Every byte value, through a program and back, and through the stdin
	// of cat.
	want := pattern(256 * 64)
	seen := map[byte]bool{}
	for _, b := range want {
		seen[b] = true
	}
	if len(seen) != 256 {
		t.Fatalf("pattern has %d byte values", len(seen))
	}
	r := a.exec(t, agentapi.ExecRequest{
		Argv: helperArgv(t),
		Env:  map[string]string{helperEnv: "pattern " + strconv.Itoa(len(want))},
	})
	if !bytes.Equal(r.stdout, want) {
		t.Errorf("helper output differs (%d bytes)", len(r.stdout))
	}
	r = a.exec(t, agentapi.ExecRequest{Argv: []string{"cat"}, Stdin: want})
	if !bytes.Equal(r.stdout, want) {
		t.Errorf("cat output differs (%d bytes)", len(r.stdout))
	}
}

func TestExecUnicode(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	const s = "héllo 世界 🚀 Ω"
	r := a.exec(t, agentapi.ExecRequest{
		Command: `printf '%s|%s\n' "$GREETING" '` + s + `'`,
		Env:     map[string]string{"GREETING": s},
	})
	if got, want := string(r.stdout), s+"|"+s+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func TestExecOutputCap(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, func(o *Options) { o.MaxOutputBytes = 3000 })
	t.Run("request cap", func(t *testing.T) {
		r := a.exec(t, agentapi.ExecRequest{
			Argv:           helperArgv(t),
			Env:            map[string]string{helperEnv: "pattern 100000"},
			MaxOutputBytes: 1000,
		})
		if !bytes.Equal(r.stdout, pattern(1000)) {
			t.Errorf("got %d bytes, want the first 1000 of the output", len(r.stdout))
		}
		if r.exit.DroppedBytes != 99000 || r.exit.ExitCode != 0 {
			t.Errorf("exit = %+v, want 99000 dropped, code 0", r.exit)
		}
	})
	t.Run("agent default, both streams together", func(t *testing.T) {
		r := a.exec(t, agentapi.ExecRequest{Command: `head -c 2000 /dev/zero; head -c 2000 /dev/zero >&2`})
		if got := len(r.stdout) + len(r.stderr); got != 3000 {
			t.Errorf("got %d bytes, want 3000", got)
		}
		if r.exit.DroppedBytes != 1000 {
			t.Errorf("dropped = %d, want 1000", r.exit.DroppedBytes)
		}
	})
}

func TestExecStdin(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	t.Run("bytes then EOF", func(t *testing.T) {
		r := a.exec(t, agentapi.ExecRequest{Argv: []string{"cat"}, Stdin: []byte("hello\nworld")})
		if string(r.stdout) != "hello\nworld" {
			t.Errorf("stdout = %q", r.stdout)
		}
	})
	t.Run("large", func(t *testing.T) {
		in := pattern(3 << 20)
		r := a.exec(t, agentapi.ExecRequest{Argv: []string{"cat"}, Stdin: in})
		if !bytes.Equal(r.stdout, in) {
			t.Errorf("cat returned %d bytes of %d, or different ones", len(r.stdout), len(in))
		}
	})
	t.Run("none is /dev/null", func(t *testing.T) {
		r := a.exec(t, agentapi.ExecRequest{Command: `cat; readlink /proc/self/fd/0 || true`})
		if got := strings.TrimSpace(string(r.stdout)); got != "/dev/null" {
			t.Errorf("stdin is %q, want /dev/null", got)
		}
	})
	t.Run("not read", func(t *testing.T) {
		r := a.exec(t, agentapi.ExecRequest{Argv: []string{"true"}, Stdin: pattern(1 << 20)})
		if r.exit.ExitCode != 0 {
			t.Errorf("exit = %+v", r.exit)
		}
	})
}

func TestExecEnv(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	r := a.exec(t, agentapi.ExecRequest{
		Argv: []string{"env"},
		Env:  map[string]string{"FOO": "bar baz", "KEEP_ME": "overridden"},
	})
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(r.stdout)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	want := map[string]string{
		"FOO":     "bar baz",
		"KEEP_ME": "overridden",
		"HOME":    a.user.Home,
		"USER":    a.user.Name,
		"LOGNAME": a.user.Name,
		"SHELL":   a.user.Shell,
		"PATH":    os.Getenv("PATH"),
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("%s = %q, want %q", k, env[k], v)
		}
	}
	for k := range env {
		if strings.HasPrefix(k, "BERTH_") {
			t.Errorf("child sees %s", k)
		}
	}
	if bytes.Contains(r.stdout, []byte(testKey)) {
		t.Error("the agent's key is visible in the child's environment")
	}
	// The key is not in /proc/self/environ of a shell either.
	r = a.exec(t, agentapi.ExecRequest{Command: `cat /proc/$$/environ`})
	if bytes.Contains(r.stdout, []byte(testKey)) {
		t.Error("the agent's key is in a shell's /proc environ")
	}
}

func TestExecEnvInheritsAgentEnv(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, func(o *Options) { o.Environ = []string{"LANG=C.UTF-8"} })
	r := a.exec(t, agentapi.ExecRequest{Command: `echo "$LANG|$PATH"`})
	if got, want := string(r.stdout), "C.UTF-8|"+defaultPath+"\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func TestExecCwd(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	if err := os.MkdirAll(filepath.Join(a.workdir, "sub", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := t.TempDir()
	tests := []struct{ cwd, want string }{
		{"", a.workdir},
		{"sub", filepath.Join(a.workdir, "sub")},
		{"sub/deeper/..", filepath.Join(a.workdir, "sub")},
		{other, other},
		{"/", "/"},
	}
	for _, tt := range tests {
		r := a.exec(t, agentapi.ExecRequest{Argv: []string{"pwd"}, Cwd: tt.cwd})
		if got := strings.TrimSpace(string(r.stdout)); got != tt.want {
			t.Errorf("cwd %q: pwd = %q, want %q", tt.cwd, got, tt.want)
		}
	}
}

func TestExecStartErrors(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	if err := os.WriteFile(filepath.Join(a.workdir, "plain.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(a.workdir, "badexec"), []byte("\x7fELF garbage"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		req  agentapi.ExecRequest
		want string // in the message
	}{
		{"missing program", agentapi.ExecRequest{Argv: []string{"no-such-program-xyz"}}, `"no-such-program-xyz" not found`},
		{"missing path", agentapi.ExecRequest{Argv: []string{"/nope/prog"}}, `"/nope/prog": does not exist`},
		{"not executable", agentapi.ExecRequest{Argv: []string{"./plain.txt"}}, `"./plain.txt": is not an executable file`},
		{"directory", agentapi.ExecRequest{Argv: []string{"/tmp"}}, `"/tmp": is not an executable file`},
		{"exec format", agentapi.ExecRequest{Argv: []string{"./badexec"}}, `exec format error`},
		{"missing cwd", agentapi.ExecRequest{Argv: []string{"true"}, Cwd: "nowhere"}, `cwd "` + filepath.Join(a.workdir, "nowhere") + `" does not exist`},
		{"cwd is a file", agentapi.ExecRequest{Command: "true", Cwd: "plain.txt"}, `is not a directory`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := a.execError(t, tt.req)
			if e.Status != http.StatusBadRequest || e.Err.Code != agentapi.CodeBadRequest {
				t.Errorf("got %d %s, want 400 bad_request", e.Status, e.Err.Code)
			}
			if !strings.Contains(e.Err.Message, tt.want) {
				t.Errorf("message %q does not contain %q", e.Err.Message, tt.want)
			}
		})
	}
}

// A daemon that keeps the output pipes open must not hold the exec.
func TestExecBackgroundGrandchildDoesNotHang(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	for _, cmd := range []string{
		`sleep 1000 & echo $!`,
		`sleep 1000 <&0 & echo $!`, // holds stdin too, which is never read
	} {
		t.Run(cmd, func(t *testing.T) {
			start := time.Now()
			r := a.exec(t, agentapi.ExecRequest{Command: cmd, Stdin: pattern(1 << 20)})
			el := time.Since(start)
			pid, err := strconv.Atoi(strings.TrimSpace(string(r.stdout)))
			if err != nil {
				t.Fatalf("stdout %q: %v", r.stdout, err)
			}
			t.Cleanup(func() {
				_ = syscall.Kill(pid, syscall.SIGKILL)
				waitGone(t, pid)
			})
			if r.exit.ExitCode != 0 || r.exit.TimedOut {
				t.Errorf("exit = %+v", r.exit)
			}
			if el > 10*time.Second {
				t.Errorf("exec took %v", el)
			}
			// Not killed: a normal exit leaves a daemon running.
			if !alive(pid) {
				t.Errorf("background process %d was killed", pid)
			}
		})
	}
}

func TestExecConcurrent(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	const n = 8
	errs := make(chan error, n)
	for i := range n {
		go func() {
			want := strconv.Itoa(i)
			_, err := a.client.Exec(t.Context(), agentapi.ExecRequest{Argv: []string{"echo", want}},
				func(ev agentapi.ExecEvent) error {
					if ev.Type == agentapi.EventStdout && string(ev.Data) != want+"\n" {
						return errors.New("got " + string(ev.Data) + " for " + want)
					}
					return nil
				})
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

func TestExecAfterCloseRefused(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	a.srv.Close()
	e := a.execError(t, agentapi.ExecRequest{Argv: []string{"true"}})
	if e.Status != http.StatusServiceUnavailable || e.Err.Code != agentapi.CodeUnavailable {
		t.Errorf("got %d %s, want 503 unavailable", e.Status, e.Err.Code)
	}
	if err := a.client.Health(t.Context()); err == nil {
		t.Error("Health = nil while shutting down")
	}
	if err := a.client.Alive(t.Context()); err != nil {
		t.Errorf("Alive = %v", err)
	}
}
