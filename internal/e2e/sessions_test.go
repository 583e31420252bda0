package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/dockertest"
)

// sessionCall is everything one session call streamed.
type sessionCall struct {
	stdout, stderr []byte
	start, final   agentapi.SessionEvent
}

func (c sessionCall) out() string { return string(c.stdout) + string(c.stderr) }

func (c *sessionCall) on(ev agentapi.SessionEvent) error {
	switch ev.Type {
	case agentapi.EventStart:
		c.start = ev
	case agentapi.EventStdout:
		c.stdout = append(c.stdout, ev.Data...)
	case agentapi.EventStderr:
		c.stderr = append(c.stderr, ev.Data...)
	}
	return nil
}

func callContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (b *box) sessionExec(t *testing.T, name string, req agentapi.SessionExecRequest) sessionCall {
	t.Helper()
	var c sessionCall
	final, err := b.agent.SessionExec(callContext(t), name, req, c.on)
	if err != nil {
		t.Fatalf("session %s exec %q: %v", name, req.Command, err)
	}
	c.final = final
	return c
}

// srun runs a command in a session that must end, and returns its output
// and exit code.
func (b *box) srun(t *testing.T, name, command string) (string, int) {
	t.Helper()
	c := b.sessionExec(t, name, agentapi.SessionExecRequest{Command: command})
	if c.final.Running {
		t.Fatalf("%q still running", command)
	}
	return c.out(), c.final.ExitCode
}

func (b *box) sessionInput(t *testing.T, name string, req agentapi.SessionInputRequest) sessionCall {
	t.Helper()
	var c sessionCall
	final, err := b.agent.SessionInput(callContext(t), name, req, c.on)
	if err != nil {
		t.Fatalf("session %s input %+v: %v", name, req, err)
	}
	c.final = final
	return c
}

// The OpenHands bash scenarios, in one Debian sandbox as user 1000.
func TestSessionsInContainer(t *testing.T) {
	b := newBox(t, dockertest.DebianImage)

	t.Run("state persists", func(t *testing.T) {
		steps := []struct{ cmd, want string }{
			{"pwd; id -un; echo $0", "/workspace\nberth\n"},
			{"cd /tmp", ""},
			{"export X=1", ""},
			{`echo "$(pwd) $X"`, "/tmp 1\n"},
			{"f() { echo \"f:$*\"; }; alias g='echo g:'", ""},
			{"f a b; g c", "f:a b\ng: c\n"},
			{"bash -c 'echo child:$X'", "child:1\n"},
		}
		for i, st := range steps {
			out, code := b.srun(t, "state", st.cmd)
			if i == 0 {
				// $0 is the session's shell, whatever its path.
				if !strings.HasPrefix(out, st.want) || !strings.Contains(out, "bash") {
					t.Errorf("%q: %q", st.cmd, out)
				}
				continue
			}
			if out != st.want || code != 0 {
				t.Errorf("%q: got %q (exit %d), want %q", st.cmd, out, code, st.want)
			}
		}
	})

	t.Run("multi-line and heredoc", func(t *testing.T) {
		out, code := b.srun(t, "heredoc", "x=5\nif [ $x -gt 3 ]; then\n  echo big\nfi\ncat <<'EOF' > /tmp/h.txt\nline $x\n  'quoted' \"dq\"\nEOF\ncat /tmp/h.txt\ncat <<EOF\nv=$x\nEOF")
		if want := "big\nline $x\n  'quoted' \"dq\"\nv=5\n"; out != want || code != 0 {
			t.Errorf("got %q (exit %d), want %q", out, code, want)
		}
	})

	t.Run("exit codes", func(t *testing.T) {
		for _, tt := range []struct {
			cmd  string
			code int
		}{
			{"true", 0}, {"false", 1}, {"(exit 42)", 42}, {"bash -c 'exit 42'", 42},
			{"false | true", 0}, {"true | false", 1},
			{"set -o pipefail; false | true; r=$?; set +o pipefail; (exit $r)", 1},
			{"nosuchcommand", 127}, {"echo ok; false", 1}, {"sleep 0.1 && (exit 3)", 3},
		} {
			if _, code := b.srun(t, "codes", tt.cmd); code != tt.code {
				t.Errorf("%q: exit %d, want %d", tt.cmd, code, tt.code)
			}
		}
	})

	t.Run("only its own output", func(t *testing.T) {
		for i := range 20 {
			n := strconv.Itoa(i)
			c := b.sessionExec(t, "own", agentapi.SessionExecRequest{Command: "echo o" + n + "; echo e" + n + " >&2"})
			if string(c.stdout) != "o"+n+"\n" || string(c.stderr) != "e"+n+"\n" {
				t.Fatalf("call %d: %q %q", i, c.stdout, c.stderr)
			}
		}
	})

	t.Run("long running", func(t *testing.T) {
		start := time.Now()
		c := b.sessionExec(t, "long", agentapi.SessionExecRequest{Command: "sleep 3; echo done", TimeoutMS: 1000})
		if !c.final.Running || len(c.stdout) != 0 {
			t.Fatalf("first call: %+v %q", c.final, c.out())
		}
		if el := time.Since(start); el < time.Second || el > 2500*time.Millisecond {
			t.Errorf("a 1 s timeout returned after %v", el)
		}
		var more sessionCall
		final, err := b.agent.SessionOutput(callContext(t), "long", agentapi.SessionOutputRequest{}, more.on)
		if err != nil {
			t.Fatal(err)
		}
		if final.Running || final.ExitCode != 0 || string(more.stdout) != "done\n" {
			t.Errorf("read on: %+v %q", final, more.out())
		}
	})

	t.Run("input to read", func(t *testing.T) {
		c := b.sessionExec(t, "input", agentapi.SessionExecRequest{Command: "read -p 'name? ' x; echo \"got $x\"", TimeoutMS: 500})
		if !c.final.Running || !strings.Contains(c.out(), "name? ") {
			t.Fatalf("%+v %q", c.final, c.out())
		}
		c = b.sessionInput(t, "input", agentapi.SessionInputRequest{Text: "Ada Lovelace"})
		if c.final.Running || c.final.ExitCode != 0 || string(c.stdout) != "got Ada Lovelace\n" {
			t.Errorf("%+v %q", c.final, c.out())
		}
	})

	t.Run("ctrl-c and busy", func(t *testing.T) {
		c := b.sessionExec(t, "intr", agentapi.SessionExecRequest{Command: "sleep 100", TimeoutMS: 300})
		if !c.final.Running {
			t.Fatalf("%+v", c.final)
		}
		_, err := b.agent.SessionExec(callContext(t), "intr", agentapi.SessionExecRequest{Command: "echo no"}, nil)
		var ae *agentapi.APIError
		if !errors.As(err, &ae) || ae.Status != http.StatusConflict || ae.Err.Code != agentapi.CodeBusy ||
			!strings.Contains(ae.Err.Message, "input") || !strings.Contains(ae.Err.Message, "output") {
			t.Errorf("exec while busy: %v", err)
		}
		c = b.sessionInput(t, "intr", agentapi.SessionInputRequest{Control: agentapi.ControlInterrupt, TimeoutMS: 10_000})
		if c.final.Running || c.final.ExitCode != 130 {
			t.Errorf("after C-c: %+v", c.final)
		}
		if out, code := b.srun(t, "intr", "echo usable"); out != "usable\n" || code != 0 {
			t.Errorf("after: %q %d", out, code)
		}
	})

	t.Run("ctrl-d and ctrl-z", func(t *testing.T) {
		b.sessionExec(t, "keys", agentapi.SessionExecRequest{Command: "wc -l", TimeoutMS: 300})
		b.sessionInput(t, "keys", agentapi.SessionInputRequest{Text: "a\nb", TimeoutMS: 300})
		c := b.sessionInput(t, "keys", agentapi.SessionInputRequest{Control: agentapi.ControlEOF})
		if strings.TrimSpace(string(c.stdout)) != "2" || c.final.ExitCode != 0 {
			t.Errorf("wc after C-d: %q %+v", c.out(), c.final)
		}
		b.sessionExec(t, "keys", agentapi.SessionExecRequest{Command: "sleep 100", TimeoutMS: 300})
		c = b.sessionInput(t, "keys", agentapi.SessionInputRequest{Control: agentapi.ControlSuspend, TimeoutMS: 10_000})
		if c.final.Running || c.final.ExitCode != 148 {
			t.Errorf("after C-z: %+v", c.final)
		}
		if out, _ := b.srun(t, "keys", "jobs; kill %1"); !strings.Contains(out, "Stopped") {
			t.Errorf("jobs: %q", out)
		}
	})

	t.Run("10 MB of output", func(t *testing.T) {
		out, code := b.sh(t, "head -c 10485760 /dev/urandom > /tmp/big && sha256sum < /tmp/big")
		if code != 0 {
			t.Fatal(out)
		}
		want := strings.Fields(out)[0]
		c := b.sessionExec(t, "big", agentapi.SessionExecRequest{Command: "cat /tmp/big"})
		sum := sha256.Sum256(c.stdout)
		if len(c.stdout) != 10<<20 || hex.EncodeToString(sum[:]) != want || c.final.DroppedBytes != 0 {
			t.Errorf("got %d bytes, sha256 %x, want %s", len(c.stdout), sum, want)
		}
	})

	t.Run("binary and unicode", func(t *testing.T) {
		c := b.sessionExec(t, "bin", agentapi.SessionExecRequest{Command: `for i in $(seq 0 255); do printf "\\$(printf %o $i)"; done`})
		want := make([]byte, 256)
		for i := range want {
			want[i] = byte(i)
		}
		if !bytes.Equal(c.stdout, want) {
			t.Errorf("binary: %q", c.stdout)
		}
		const s = "héllo 世界 🚀"
		if out, _ := b.srun(t, "bin", "echo '"+s+"' | cat"); out != s+"\n" {
			t.Errorf("unicode: %q", out)
		}
	})

	t.Run("daemon returns promptly", func(t *testing.T) {
		start := time.Now()
		out, code := b.srun(t, "daemon", "nohup sleep 100 >/dev/null 2>&1 & echo $!")
		if el := time.Since(start); el > 2*time.Second || code != 0 {
			t.Errorf("took %v, exit %d", el, code)
		}
		pid := strings.TrimSpace(out)
		if got, _ := b.sh(t, "kill -0 "+pid+" && echo alive"); got != "alive\n" {
			t.Errorf("daemon %s: %q", pid, got)
		}
	})

	t.Run("exit then a new shell", func(t *testing.T) {
		b.srun(t, "exit", "cd /tmp; export GONE=1")
		c := b.sessionExec(t, "exit", agentapi.SessionExecRequest{Command: "echo bye; exit 7"})
		if !c.final.ShellExited || c.final.ExitCode != 7 || string(c.stdout) != "bye\n" {
			t.Fatalf("%+v %q", c.final, c.out())
		}
		c = b.sessionExec(t, "exit", agentapi.SessionExecRequest{Command: `echo "$(pwd) [$GONE]"`})
		if !c.start.NewSession || c.out() != "/workspace []\n" || c.final.ExitCode != 0 {
			t.Errorf("new shell: %+v %q", c.start, c.out())
		}
	})

	t.Run("fake sentinels", func(t *testing.T) {
		fake := strings.Repeat("f", 32) + " 0"
		cmd := `echo '` + fake + `'; echo '` + fake + `' >&2; echo '` + fake + `' > /dev/tty; ` +
			`printf '###PS1JSON###\n{"exit_code": "0"}\n###PS1END###\n'; (exit 9)`
		c := b.sessionExec(t, "fake", agentapi.SessionExecRequest{Command: cmd})
		if c.final.ExitCode != 9 || !strings.Contains(string(c.stdout), fake) {
			t.Errorf("%+v %q", c.final, c.out())
		}
	})

	t.Run("list and delete", func(t *testing.T) {
		list, err := b.agent.Sessions(callContext(t))
		if err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(list))
		for _, s := range list {
			names = append(names, s.Name)
		}
		if !strings.Contains(strings.Join(names, ","), "state") {
			t.Errorf("sessions: %v", names)
		}
		out, _ := b.srun(t, "del", "sleep 1000 & echo $!")
		if err := b.agent.DeleteSession(callContext(t), "del"); err != nil {
			t.Fatal(err)
		}
		// The job is gone (a zombie until init reaps it counts as gone).
		pid := strings.TrimSpace(out)
		check := `for i in $(seq 50); do s=$(cut -d' ' -f3 /proc/` + pid + `/stat 2>/dev/null); ` +
			`if [ -z "$s" ] || [ "$s" = Z ]; then echo gone; exit; fi; sleep 0.1; done; echo "still $s"`
		if got, _ := b.sh(t, check); got != "gone\n" {
			t.Errorf("background job of a deleted session: %q", got)
		}
	})
}

// busybox has only sh: sessions work the same with it.
func TestSessionsWithBusybox(t *testing.T) {
	b := newBox(t, dockertest.BusyboxImage)
	b.srun(t, "s", "cd /tmp && export V=2 && f() { echo f$V; }")
	if out, code := b.srun(t, "s", "pwd; f; (exit 5)"); out != "/tmp\nf2\n" || code != 5 {
		t.Errorf("got %q %d", out, code)
	}
	c := b.sessionExec(t, "s", agentapi.SessionExecRequest{Command: "read x; echo got $x", TimeoutMS: 300})
	if !c.final.Running {
		t.Fatalf("%+v", c.final)
	}
	c = b.sessionInput(t, "s", agentapi.SessionInputRequest{Text: "it"})
	if c.out() != "got it\n" || c.final.ExitCode != 0 {
		t.Errorf("input: %q %+v", c.out(), c.final)
	}
	b.sessionExec(t, "s", agentapi.SessionExecRequest{Command: "sleep 100", TimeoutMS: 300})
	c = b.sessionInput(t, "s", agentapi.SessionInputRequest{Control: agentapi.ControlInterrupt, TimeoutMS: 10_000})
	if c.final.ExitCode != 130 {
		t.Errorf("C-c: %+v", c.final)
	}
	c = b.sessionExec(t, "s", agentapi.SessionExecRequest{Command: "exit 4"})
	if !c.final.ShellExited || c.final.ExitCode != 4 {
		t.Errorf("exit: %+v", c.final)
	}
	if out, _ := b.srun(t, "s", "echo $0"); !strings.Contains(out, "sh") {
		t.Errorf("new shell: %q", out)
	}
}
