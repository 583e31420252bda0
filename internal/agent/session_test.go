package agent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// sessionResult is everything one session call streamed.
type sessionResult struct {
	events []agentapi.SessionEvent
	stdout []byte
	stderr []byte
	final  agentapi.SessionEvent
}

func (r sessionResult) out() string { return string(r.stdout) + string(r.stderr) }

func sessionCollect(r *sessionResult) func(agentapi.SessionEvent) error {
	return func(ev agentapi.SessionEvent) error {
		r.events = append(r.events, ev)
		switch ev.Type {
		case agentapi.EventStdout:
			r.stdout = append(r.stdout, ev.Data...)
		case agentapi.EventStderr:
			r.stderr = append(r.stderr, ev.Data...)
		}
		return nil
	}
}

// callCtx bounds one call: a hang fails the test here.
func sessionCallCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func (a *testAgent) sexec(t *testing.T, name string, req agentapi.SessionExecRequest) sessionResult {
	t.Helper()
	var r sessionResult
	final, err := a.client.SessionExec(sessionCallCtx(t), name, req, sessionCollect(&r))
	if err != nil {
		t.Fatalf("session %s exec %q: %v", name, req.Command, err)
	}
	r.final = final
	return r
}

// run runs a command that must finish, and returns its output and code.
func (a *testAgent) srun(t *testing.T, name, command string) (string, int) {
	t.Helper()
	r := a.sexec(t, name, agentapi.SessionExecRequest{Command: command})
	if r.final.Running {
		t.Fatalf("%q still running", command)
	}
	return r.out(), r.final.ExitCode
}

func (a *testAgent) sinput(t *testing.T, name string, req agentapi.SessionInputRequest) sessionResult {
	t.Helper()
	var r sessionResult
	final, err := a.client.SessionInput(sessionCallCtx(t), name, req, sessionCollect(&r))
	if err != nil {
		t.Fatalf("session %s input %+v: %v", name, req, err)
	}
	r.final = final
	return r
}

func (a *testAgent) soutput(t *testing.T, name string, req agentapi.SessionOutputRequest) sessionResult {
	t.Helper()
	var r sessionResult
	final, err := a.client.SessionOutput(sessionCallCtx(t), name, req, sessionCollect(&r))
	if err != nil {
		t.Fatalf("session %s output: %v", name, err)
	}
	r.final = final
	return r
}

func sessionAPIErr(t *testing.T, err error, status int, code string) *agentapi.APIError {
	t.Helper()
	var ae *agentapi.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an *APIError %d %s", err, status, code)
	}
	if ae.Status != status || ae.Err.Code != code {
		t.Fatalf("got %d %s (%s), want %d %s", ae.Status, ae.Err.Code, ae.Err.Message, status, code)
	}
	return ae
}

// shells are the shells the tests run sessions with.
func sessionShells(t *testing.T) []string {
	out := []string{"/bin/sh"}
	if checkExecutable("/bin/bash") == nil {
		out = append(out, "/bin/bash")
	} else {
		t.Log("no /bin/bash here: bash cases skipped")
	}
	return out
}

func TestSessionPersistsState(t *testing.T) {
	t.Parallel()
	for _, sh := range sessionShells(t) {
		t.Run(sh, func(t *testing.T) {
			t.Parallel()
			a := newTestAgent(t, func(o *Options) { o.Shell = sh })
			other := t.TempDir()
			steps := []struct{ cmd, want string }{
				{"pwd", a.workdir + "\n"},
				{"cd " + other + " && export X=1 && Y=2", ""},
				{`echo "$(pwd) $X $Y"`, other + " 1 2\n"},
				{"greet() { echo \"hi $1\"; }", ""},
				{"greet you", "hi you\n"},
				{"alias ll='echo aliased'", ""},
				{"ll", "aliased\n"},
				{"sh -c 'echo $X'", "1\n"}, // exported to children
			}
			for _, st := range steps {
				if out, code := a.srun(t, "s", st.cmd); out != st.want || code != 0 {
					t.Errorf("%q: got %q (exit %d), want %q", st.cmd, out, code, st.want)
				}
			}
			r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: "true"})
			if r.final.Cwd != other {
				t.Errorf("cwd in the exit event = %q, want %q", r.final.Cwd, other)
			}
		})
	}
}

func TestSessionMultilineAndHeredoc(t *testing.T) {
	t.Parallel()
	for _, sh := range sessionShells(t) {
		t.Run(sh, func(t *testing.T) {
			t.Parallel()
			a := newTestAgent(t, func(o *Options) { o.Shell = sh })
			cmd := "for i in 1 2 3; do\n  echo \"n$i\"\ndone\ncat <<'EOF'\nliteral $HOME 'quoted' \"double\" \\back\nEOF\ncat <<EOF\nexpanded ${HOME}\nEOF"
			out, code := a.srun(t, "s", cmd)
			want := "n1\nn2\nn3\nliteral $HOME 'quoted' \"double\" \\back\nexpanded " + a.user.Home + "\n"
			if out != want || code != 0 {
				t.Errorf("got %q (exit %d), want %q", out, code, want)
			}
			// A here-document ending on the last line, with no newline.
			if out, _ := a.srun(t, "s", "cat <<X\nlast\nX"); out != "last\n" {
				t.Errorf("heredoc at the end: %q", out)
			}
			// Unbalanced text is a syntax error of that command only.
			out, code = a.srun(t, "s", `echo "unterminated`)
			if code != 2 || !strings.Contains(out, "command") {
				t.Errorf("syntax error: %q exit %d, want a message and 2", out, code)
			}
			if out, code := a.srun(t, "s", "echo still here"); out != "still here\n" || code != 0 {
				t.Errorf("after a syntax error: %q %d", out, code)
			}
		})
	}
}

func TestSessionExitCodes(t *testing.T) {
	t.Parallel()
	for _, sh := range sessionShells(t) {
		t.Run(sh, func(t *testing.T) {
			t.Parallel()
			a := newTestAgent(t, func(o *Options) { o.Shell = sh })
			tests := []struct {
				cmd  string
				code int
			}{
				{"true", 0},
				{"false", 1},
				{"(exit 42)", 42},
				{"sh -c 'exit 255'", 255},
				{"false | true", 0},
				{"true | false", 1},
				{"no-such-command-xyz", 127},
				{"return 7", 7},
				{"echo x; false", 1},
				{"sh -c 'kill -9 $$'", 137},
			}
			if strings.HasSuffix(sh, "bash") {
				tests = append(tests, struct {
					cmd  string
					code int
				}{"set -o pipefail; false | true; r=$?; set +o pipefail; (exit $r)", 1})
			}
			for _, tt := range tests {
				if _, code := a.srun(t, "s", tt.cmd); code != tt.code {
					t.Errorf("%q: exit %d, want %d", tt.cmd, code, tt.code)
				}
			}
		})
	}
}

func TestSessionOnlyOwnOutput(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	for i := range 30 {
		n := strconv.Itoa(i)
		r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: "echo out" + n + "; echo err" + n + " >&2"})
		if string(r.stdout) != "out"+n+"\n" || string(r.stderr) != "err"+n+"\n" {
			t.Fatalf("call %d: stdout %q stderr %q", i, r.stdout, r.stderr)
		}
	}
}

func TestSessionEvents(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	r := a.sexec(t, "ev", agentapi.SessionExecRequest{Command: "echo hi"})
	first := r.events[0]
	if first.Type != agentapi.EventStart || first.PID <= 0 || first.Session != "ev" || !first.NewSession {
		t.Errorf("start = %+v", first)
	}
	if last := r.events[len(r.events)-1]; last.Type != agentapi.EventExit || last.Running || last.ShellExited {
		t.Errorf("last = %+v", last)
	}
	r2 := a.sexec(t, "ev", agentapi.SessionExecRequest{Command: "echo hi"})
	if r2.events[0].NewSession || r2.events[0].PID != first.PID {
		t.Errorf("second start = %+v, want the same shell", r2.events[0])
	}
}

func TestSessionLongRunning(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	start := time.Now()
	r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: "echo begin; sleep 1; echo done", TimeoutMS: 200})
	if !r.final.Running || r.final.ExitCode != 0 || string(r.stdout) != "begin\n" {
		t.Fatalf("first call: %+v stdout %q", r.final, r.stdout)
	}
	if el := time.Since(start); el > 900*time.Millisecond {
		t.Errorf("a 200 ms timeout took %v", el)
	}
	r = a.soutput(t, "s", agentapi.SessionOutputRequest{})
	if r.final.Running || r.final.ExitCode != 0 || string(r.stdout) != "done\n" {
		t.Errorf("output call: %+v stdout %q", r.final, r.stdout)
	}
	// The result has been read: nothing more to read.
	_, err := a.client.SessionOutput(t.Context(), "s", agentapi.SessionOutputRequest{}, nil)
	sessionAPIErr(t, err, http.StatusConflict, agentapi.CodeIdle)
}

func TestSessionContinueWithEmptyCommand(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: "sleep 0.5; echo late", TimeoutMS: 50})
	if !r.final.Running {
		t.Fatalf("final = %+v", r.final)
	}
	r = a.sexec(t, "s", agentapi.SessionExecRequest{})
	if r.final.Running || string(r.stdout) != "late\n" {
		t.Errorf("continue: %+v %q", r.final, r.stdout)
	}
	_, err := a.client.SessionExec(t.Context(), "s", agentapi.SessionExecRequest{}, nil)
	sessionAPIErr(t, err, http.StatusConflict, agentapi.CodeIdle)
}

func TestSessionNoOutputTimeout(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	r := a.sexec(t, "s", agentapi.SessionExecRequest{
		Command:           "for i in 1 2 3; do echo $i; sleep 0.05; done; sleep 100",
		NoOutputTimeoutMS: 400,
		TimeoutMS:         30_000,
	})
	if !r.final.Running || !r.final.NoOutputTimeout || string(r.stdout) != "1\n2\n3\n" {
		t.Fatalf("final %+v stdout %q", r.final, r.stdout)
	}
	r = a.sinput(t, "s", agentapi.SessionInputRequest{Control: agentapi.ControlInterrupt})
	if r.final.Running || r.final.ExitCode != 130 {
		t.Errorf("after C-c: %+v", r.final)
	}
}

func TestSessionBusy(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: "sleep 100", TimeoutMS: 50})
	if !r.final.Running {
		t.Fatalf("final = %+v", r.final)
	}
	_, err := a.client.SessionExec(t.Context(), "s", agentapi.SessionExecRequest{Command: "echo no"}, nil)
	ae := sessionAPIErr(t, err, http.StatusConflict, agentapi.CodeBusy)
	for _, want := range []string{"sleep 100", "input", "output", "C-c"} {
		if !strings.Contains(ae.Err.Message, want) {
			t.Errorf("message %q does not mention %q", ae.Err.Message, want)
		}
	}
	info, err := a.client.Session(t.Context(), "s")
	if err != nil {
		t.Fatal(err)
	}
	if info.Command == nil || !info.Command.Running || info.Command.Command != "sleep 100" {
		t.Errorf("info.Command = %+v", info.Command)
	}
	r = a.sinput(t, "s", agentapi.SessionInputRequest{Control: agentapi.ControlInterrupt})
	if r.final.ExitCode != 130 {
		t.Errorf("C-c: %+v", r.final)
	}
	if out, code := a.srun(t, "s", "echo yes"); out != "yes\n" || code != 0 {
		t.Errorf("after: %q %d", out, code)
	}
}

func TestSessionInput(t *testing.T) {
	t.Parallel()
	for _, sh := range sessionShells(t) {
		t.Run(sh, func(t *testing.T) {
			t.Parallel()
			a := newTestAgent(t, func(o *Options) { o.Shell = sh })
			r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: "read x; echo \"got $x\"", TimeoutMS: 200})
			if !r.final.Running {
				t.Fatalf("read returned: %+v", r.final)
			}
			r = a.sinput(t, "s", agentapi.SessionInputRequest{Text: "hello world"})
			if r.final.Running || r.final.ExitCode != 0 || string(r.stdout) != "got hello world\n" {
				t.Errorf("input: %+v %q", r.final, r.out())
			}
			// Input is not echoed back, and a program that reads the
			// terminal sees one.
			r = a.sexec(t, "s", agentapi.SessionExecRequest{Command: "test -t 0 && echo tty; cat", TimeoutMS: 200})
			r2 := a.sinput(t, "s", agentapi.SessionInputRequest{Text: "line1\nline2", TimeoutMS: 200})
			r3 := a.sinput(t, "s", agentapi.SessionInputRequest{Control: agentapi.ControlEOF})
			if got := r.out() + r2.out() + r3.out(); got != "tty\nline1\nline2\n" || r3.final.ExitCode != 0 || r3.final.Running {
				t.Errorf("cat: %q, final %+v", got, r3.final)
			}
		})
	}
}

func TestSessionInterrupt(t *testing.T) {
	t.Parallel()
	for _, sh := range sessionShells(t) {
		t.Run(sh, func(t *testing.T) {
			t.Parallel()
			a := newTestAgent(t, func(o *Options) { o.Shell = sh })
			for _, cmd := range []string{"sleep 100", "sleep 100 | cat", "read x"} {
				r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: cmd, TimeoutMS: 200})
				if !r.final.Running {
					t.Fatalf("%q: %+v", cmd, r.final)
				}
				r = a.sinput(t, "s", agentapi.SessionInputRequest{Control: agentapi.ControlInterrupt, TimeoutMS: 10_000})
				if r.final.Running || r.final.ShellExited {
					t.Fatalf("%q after C-c: %+v", cmd, r.final)
				}
				// sh goes on to the next command of the line after a
				// builtin's interruption, as it does on a terminal.
				if r.final.ExitCode != 130 && !(cmd == "read x" && !strings.HasSuffix(sh, "bash")) {
					t.Errorf("%q after C-c: exit %d, want 130", cmd, r.final.ExitCode)
				}
				if out, code := a.srun(t, "s", "echo alive"); out != "alive\n" || code != 0 {
					t.Errorf("after %q: %q %d", cmd, out, code)
				}
			}
		})
	}
}

func TestSessionSuspend(t *testing.T) {
	t.Parallel()
	for _, sh := range sessionShells(t) {
		t.Run(sh, func(t *testing.T) {
			t.Parallel()
			a := newTestAgent(t, func(o *Options) { o.Shell = sh })
			r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: "sleep 100", TimeoutMS: 200})
			if !r.final.Running {
				t.Fatalf("%+v", r.final)
			}
			r = a.sinput(t, "s", agentapi.SessionInputRequest{Control: agentapi.ControlSuspend, TimeoutMS: 10_000})
			// 128+SIGTSTP; the shell says "Stopped" now (sh) or with the
			// next command (bash).
			if r.final.Running || r.final.ExitCode != 148 {
				t.Fatalf("after C-z: %+v %q", r.final, r.out())
			}
			out, code := a.srun(t, "s", "jobs")
			if code != 0 || !strings.Contains(out, "Stopped") || !strings.Contains(out, "sleep 100") {
				t.Errorf("jobs: %q %d", out, code)
			}
			// Back to the foreground, and interrupted there.
			r = a.sexec(t, "s", agentapi.SessionExecRequest{Command: "fg", TimeoutMS: 200})
			if !r.final.Running {
				t.Fatalf("fg: %+v %q", r.final, r.out())
			}
			r = a.sinput(t, "s", agentapi.SessionInputRequest{Control: agentapi.ControlInterrupt, TimeoutMS: 10_000})
			if r.final.Running || r.final.ExitCode != 130 {
				t.Errorf("C-c after fg: %+v %q", r.final, r.out())
			}
		})
	}
}

func TestSessionLargeOutputIntact(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	const n = 10 << 20
	exe := helperArgv(t)[0]
	r := a.sexec(t, "s", agentapi.SessionExecRequest{
		Command: helperEnv + "='pattern " + strconv.Itoa(n) + "' " + agentapi.ShellQuote(exe),
	})
	if r.final.ExitCode != 0 || r.final.DroppedBytes != 0 {
		t.Fatalf("final %+v stderr %q", r.final, r.stderr)
	}
	if !bytes.Equal(r.stdout, pattern(n)) {
		t.Fatalf("got %d bytes, want %d, or different ones", len(r.stdout), n)
	}
}

func TestSessionOutputCap(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: "head -c 5000 /dev/zero; head -c 5000 /dev/zero >&2", MaxOutputBytes: 3000})
	if got := len(r.stdout) + len(r.stderr); got != 3000 || r.final.DroppedBytes != 7000 {
		t.Errorf("got %d bytes, dropped %d; want 3000 and 7000", got, r.final.DroppedBytes)
	}
}

func TestSessionBinaryAndUnicode(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	want := pattern(256 * 64)
	exe := helperArgv(t)[0]
	r := a.sexec(t, "s", agentapi.SessionExecRequest{
		Command: helperEnv + "='pattern " + strconv.Itoa(len(want)) + "' " + agentapi.ShellQuote(exe),
	})
	if !bytes.Equal(r.stdout, want) {
		t.Errorf("binary output differs (%d bytes)", len(r.stdout))
	}
	const s = "héllo 世界 🚀 Ω"
	if out, _ := a.srun(t, "s", "v='"+s+"'; printf '%s|%s\\n' \"$v\" '"+s+"'"); out != s+"|"+s+"\n" {
		t.Errorf("unicode: %q", out)
	}
}

// Text in the output that looks like a status line, or like OpenHands'
// prompt, changes nothing.
func TestSessionSpoofedSentinel(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	fake := "0123456789abcdef0123456789abcdef 0"
	cmd := `echo '` + fake + `'; echo '` + fake + `' >&2; echo '` + fake + `' >/dev/tty; ` +
		`printf '\n###PS1JSON###\n{"exit_code":"0"}\n###PS1END###\n'; ` +
		`(exit 3)`
	r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: cmd, TimeoutMS: 20_000})
	if r.final.Running || r.final.ExitCode != 3 {
		t.Fatalf("final %+v output %q", r.final, r.out())
	}
	if !strings.Contains(string(r.stdout), fake) || !strings.Contains(string(r.stdout), "###PS1END###") {
		t.Errorf("the fake lines are output: %q", r.stdout)
	}
	if out, code := a.srun(t, "s", "echo next"); out != "next\n" || code != 0 {
		t.Errorf("next: %q %d", out, code)
	}
}

func TestSessionTerminalOutput(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: "echo to-tty >/dev/tty; echo to-out"})
	if string(r.stdout) != "to-out\n" || string(r.stderr) != "to-tty\n" {
		t.Errorf("stdout %q stderr %q", r.stdout, r.stderr)
	}
}

func TestSessionBackgroundJobs(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	start := time.Now()
	out, code := a.srun(t, "s", "nohup sleep 100 >/dev/null 2>&1 & echo $!")
	if code != 0 {
		t.Fatalf("%q %d", out, code)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("a forked daemon held the call for %v", el)
	}
	daemon, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(out)
	}
	// A job that keeps the output open does not hold the call either, and
	// its later output is dropped, never an EPIPE for it.
	out, code = a.srun(t, "s", "(sleep 0.3; echo late; echo alive >"+filepath.Join(a.workdir, "bg")+") & echo started")
	if out != "started\n" || code != 0 {
		t.Errorf("background job: %q %d", out, code)
	}
	if out, _ := a.srun(t, "s", "sleep 0.5; cat bg"); out != "alive\n" {
		t.Errorf("the background job did not go on: %q", out)
	}
	if !alive(daemon) {
		t.Errorf("daemon %d died", daemon)
	}
	// Deleting the session kills all of its processes.
	if err := a.client.DeleteSession(t.Context(), "s"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, daemon)
}

func TestSessionExitRestarts(t *testing.T) {
	t.Parallel()
	for _, sh := range sessionShells(t) {
		t.Run(sh, func(t *testing.T) {
			t.Parallel()
			a := newTestAgent(t, func(o *Options) { o.Shell = sh })
			a.srun(t, "s", "cd / && export GONE=1")
			r := a.sexec(t, "s", agentapi.SessionExecRequest{Command: "echo bye; exit 3"})
			if !r.final.ShellExited || r.final.ExitCode != 3 || string(r.stdout) != "bye\n" {
				t.Fatalf("exit: %+v %q", r.final, r.out())
			}
			info, err := a.client.Session(t.Context(), "s")
			if err != nil || info.Alive || info.ExitCode != 3 {
				t.Errorf("info after exit: %+v %v", info, err)
			}
			r = a.sexec(t, "s", agentapi.SessionExecRequest{Command: `echo "$(pwd) [$GONE]"`})
			if !r.events[0].NewSession || r.out() != a.workdir+" []\n" {
				t.Errorf("restart: start %+v out %q", r.events[0], r.out())
			}
			// A shell killed by a signal is reported as such.
			r = a.sexec(t, "s", agentapi.SessionExecRequest{Command: "kill -9 $$"})
			if !r.final.ShellExited || r.final.Signal != "SIGKILL" || r.final.ExitCode != 137 {
				t.Errorf("kill: %+v", r.final)
			}
			if out, _ := a.srun(t, "s", "echo back"); out != "back\n" {
				t.Errorf("after kill: %q", out)
			}
		})
	}
}

func TestSessionCreateListDelete(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	ctx := t.Context()
	sub := filepath.Join(a.workdir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	info, err := a.client.CreateSession(ctx, agentapi.SessionCreateRequest{
		Name:           "b",
		SessionOptions: agentapi.SessionOptions{Shell: "sh", Cwd: "sub", Env: map[string]string{"FOO": "bar"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if info.Name != "b" || info.PID <= 0 || !info.Alive || info.Cwd != sub || !strings.HasSuffix(info.Shell, "/sh") {
		t.Errorf("created: %+v", info)
	}
	_, err = a.client.CreateSession(ctx, agentapi.SessionCreateRequest{Name: "b"})
	sessionAPIErr(t, err, http.StatusConflict, agentapi.CodeExists)
	if out, _ := a.srun(t, "b", `echo "$FOO $(pwd)"`); out != "bar "+sub+"\n" {
		t.Errorf("env and cwd: %q", out)
	}
	// exec creates; create options apply then.
	r := a.sexec(t, "a", agentapi.SessionExecRequest{Command: "echo $V", Create: &agentapi.SessionOptions{Env: map[string]string{"V": "v"}}})
	if r.out() != "v\n" || !r.events[0].NewSession {
		t.Errorf("implicit create: %q", r.out())
	}
	list, err := a.client.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].Name != "a" || list[1].Name != "b" {
		t.Fatalf("list = %+v", list)
	}
	pid := list[0].PID
	if err := a.client.DeleteSession(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
	_, err = a.client.Session(ctx, "a")
	sessionAPIErr(t, err, http.StatusNotFound, agentapi.CodeNotFound)
	err = a.client.DeleteSession(ctx, "a")
	sessionAPIErr(t, err, http.StatusNotFound, agentapi.CodeNotFound)
	if list, _ := a.client.Sessions(ctx); len(list) != 1 {
		t.Errorf("after delete: %+v", list)
	}
}

func TestSessionErrors(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	ctx := t.Context()
	a.srun(t, "s", "true")
	tests := []struct {
		name   string
		call   func() error
		status int
		code   string
		want   string
	}{
		{"bad name", func() error {
			_, err := a.client.SessionExec(ctx, "-x", agentapi.SessionExecRequest{Command: "true"}, nil)
			return err
		}, 400, agentapi.CodeBadRequest, "not valid"},
		{"output of unknown", func() error {
			_, err := a.client.SessionOutput(ctx, "nope", agentapi.SessionOutputRequest{}, nil)
			return err
		}, 404, agentapi.CodeNotFound, `"nope"`},
		{"input of unknown", func() error {
			_, err := a.client.SessionInput(ctx, "nope", agentapi.SessionInputRequest{Text: "x"}, nil)
			return err
		}, 404, agentapi.CodeNotFound, `"nope"`},
		{"input when idle", func() error {
			_, err := a.client.SessionInput(ctx, "s", agentapi.SessionInputRequest{Text: "x"}, nil)
			return err
		}, 409, agentapi.CodeIdle, "no command is running"},
		{"bad control", func() error {
			_, err := a.client.SessionInput(ctx, "s", agentapi.SessionInputRequest{Control: "C-x"}, nil)
			return err
		}, 400, agentapi.CodeBadRequest, `"control"`},
		{"control character in text", func() error {
			_, err := a.client.SessionInput(ctx, "s", agentapi.SessionInputRequest{Text: "a\x03"}, nil)
			return err
		}, 400, agentapi.CodeBadRequest, `"text"`},
		{"negative timeout", func() error {
			_, err := a.client.SessionExec(ctx, "s", agentapi.SessionExecRequest{Command: "true", TimeoutMS: -1}, nil)
			return err
		}, 400, agentapi.CodeBadRequest, `"timeout_ms"`},
		{"bad shell", func() error {
			_, err := a.client.CreateSession(ctx, agentapi.SessionCreateRequest{Name: "x", SessionOptions: agentapi.SessionOptions{Shell: "no-such-shell"}})
			return err
		}, 400, agentapi.CodeBadRequest, `"shell"`},
		{"shell that exits", func() error {
			_, err := a.client.CreateSession(ctx, agentapi.SessionCreateRequest{Name: "x", SessionOptions: agentapi.SessionOptions{Shell: "false"}})
			return err
		}, 400, agentapi.CodeBadRequest, "exited at start"},
		{"bad cwd", func() error {
			_, err := a.client.SessionExec(ctx, "y", agentapi.SessionExecRequest{Command: "true", Create: &agentapi.SessionOptions{Cwd: "/nowhere"}}, nil)
			return err
		}, 400, agentapi.CodeBadRequest, "does not exist"},
		{"reserved env", func() error {
			_, err := a.client.CreateSession(ctx, agentapi.SessionCreateRequest{Name: "x", SessionOptions: agentapi.SessionOptions{Env: map[string]string{agentapi.EnvKey: "k"}}})
			return err
		}, 400, agentapi.CodeBadRequest, "belongs to the agent"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae := sessionAPIErr(t, tt.call(), tt.status, tt.code)
			if !strings.Contains(ae.Err.Message, tt.want) {
				t.Errorf("message %q does not contain %q", ae.Err.Message, tt.want)
			}
		})
	}
	// Failed creations leave nothing behind.
	if list, _ := a.client.Sessions(ctx); len(list) != 1 {
		t.Errorf("sessions: %+v", list)
	}
	// Wrong methods and unknown query parameters.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPut, a.url+agentapi.SessionPath(agentapi.PathSessionExec, "s"), nil)
	req.Header.Set(agentapi.HeaderKey, testKey)
	resp, err := a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("PUT exec: %d", resp.StatusCode)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, a.url+agentapi.SessionPath(agentapi.PathSessionOutput, "s")+"?wait=1", nil)
	req.Header.Set(agentapi.HeaderKey, testKey)
	resp, err = a.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown query parameter: %d", resp.StatusCode)
	}
}

// Leaving a call does not stop the command; the next call reads on.
func TestSessionClientLeaves(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	errSeen := errors.New("seen")
	_, err := a.client.SessionExec(t.Context(), "s", agentapi.SessionExecRequest{Command: "echo first; read x; echo \"then $x\""},
		func(ev agentapi.SessionEvent) error {
			if ev.Type == agentapi.EventStdout {
				return errSeen
			}
			return nil
		})
	if !errors.Is(err, errSeen) {
		t.Fatal(err)
	}
	// The agent notices the call is gone; until then it refuses a second
	// reader, after that it lets one in.
	var r sessionResult
	ctx := sessionCallCtx(t)
	for {
		final, err := a.client.SessionInput(ctx, "s", agentapi.SessionInputRequest{Text: "more"}, sessionCollect(&r))
		var ae *agentapi.APIError
		if errors.As(err, &ae) && ae.Err.Code == agentapi.CodeBusy && ctx.Err() == nil {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		r.final = final
		break
	}
	if r.final.Running || !strings.HasSuffix(r.out(), "then more\n") {
		t.Errorf("got %q %+v", r.out(), r.final)
	}
}

func TestSessionShellJoin(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	args := []string{"", "a b", "it's", `"dq"`, "$HOME", "`x`", "*", "a=b", "-n", "\\", "tab\tnew\nline", "ünï", "!", ";&|<>(){}[]~#"}
	out, code := a.srun(t, "s", agentapi.ShellJoin(append([]string{"printf", "[%s]\\n"}, args...)))
	var want strings.Builder
	for _, s := range args {
		want.WriteString("[" + s + "]\n")
	}
	if out != want.String() || code != 0 {
		t.Errorf("got %q, want %q", out, want.String())
	}
}

func TestSessionsRunSideBySide(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	const n = 4
	errs := make(chan error, n)
	for i := range n {
		go func() {
			name := "p" + strconv.Itoa(i)
			var out bytes.Buffer
			final, err := a.client.SessionExec(sessionCallCtx(t), name, agentapi.SessionExecRequest{Command: "sleep 0.2; echo " + name},
				func(ev agentapi.SessionEvent) error {
					out.Write(ev.Data)
					return nil
				})
			if err == nil && (out.String() != name+"\n" || final.ExitCode != 0) {
				err = errors.New(name + ": got " + out.String())
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// Close kills every session and ends a stream that waits on one.
func TestSessionCloseKillsSessions(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	out, _ := a.srun(t, "s", "sleep 1000 & echo $!")
	job, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(out)
	}
	info, err := a.client.Session(t.Context(), "s")
	if err != nil {
		t.Fatal(err)
	}
	streamed := make(chan agentapi.SessionEvent, 1)
	started := make(chan struct{})
	go func() {
		final, _ := a.client.SessionExec(sessionCallCtx(t), "s", agentapi.SessionExecRequest{Command: "echo started; sleep 1000"},
			func(ev agentapi.SessionEvent) error {
				if ev.Type == agentapi.EventStdout {
					close(started)
				}
				return nil
			})
		streamed <- final
	}()
	<-started
	a.srv.Close()
	final := <-streamed
	if !final.ShellExited || final.Signal != "SIGKILL" {
		t.Errorf("stream ended with %+v", final)
	}
	waitGone(t, info.PID)
	waitGone(t, job)
	a.waitProcsDone(t)
	_, err = a.client.SessionExec(t.Context(), "s", agentapi.SessionExecRequest{Command: "true"}, nil)
	sessionAPIErr(t, err, http.StatusServiceUnavailable, agentapi.CodeUnavailable)
}

// A running command counts as a running process: not idle.
func TestSessionCountsAsProcess(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	a.srun(t, "s", "true")
	if info, _ := a.client.ServerInfo(t.Context()); info.Processes != 0 {
		t.Errorf("idle session counts %d processes", info.Processes)
	}
	a.sexec(t, "s", agentapi.SessionExecRequest{Command: "sleep 100", TimeoutMS: 50})
	if info, _ := a.client.ServerInfo(t.Context()); info.Processes != 1 || info.IdleSeconds != 0 {
		t.Errorf("running command: %+v", info)
	}
	a.sinput(t, "s", agentapi.SessionInputRequest{Control: agentapi.ControlInterrupt})
	a.waitProcsDone(t)
}

// BenchmarkSessionExec measures one command's round trip in a session
// (for comparison: BenchmarkExec-style one-shot exec forks a shell per call).
func BenchmarkSessionExec(b *testing.B) {
	home, work := b.TempDir(), b.TempDir()
	id := Identity{UID: os.Getuid(), GID: os.Getgid(), Name: "bench", Home: home, Shell: "/bin/sh"}
	srv, err := NewServer(b.Context(), Options{
		Key: testKey, UserID: id.UID, Workdir: work, Environ: []string{"PATH=" + os.Getenv("PATH")},
		SetupUser: func(context.Context, int) (Identity, error) { return id, nil },
	})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv.Handler())
	b.Cleanup(ts.Close)
	b.Cleanup(srv.Close)
	c := agentapi.New(ts.URL, testKey, ts.Client())
	ctx := b.Context()
	if _, err := c.SessionExec(ctx, "bench", agentapi.SessionExecRequest{Command: "true"}, nil); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		final, err := c.SessionExec(ctx, "bench", agentapi.SessionExecRequest{Command: "true"}, nil)
		if err != nil || final.ExitCode != 0 {
			b.Fatal(final, err)
		}
	}
}
