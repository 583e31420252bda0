package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// In the child started by TestBinary the test binary is berth-agent.
const childEnv = "BERTH_AGENT_TEST_CHILD"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
	}
	os.Exit(m.Run())
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestOptionsFromEnv(t *testing.T) {
	ok := map[string]string{agentapi.EnvKey: "k", agentapi.EnvPort: "8000"}
	opts, err := optionsFromEnv(env(ok))
	if err != nil {
		t.Fatal(err)
	}
	if opts.Key != "k" || opts.Addr != ":8000" || opts.UserID != 1000 || opts.Workdir != "/workspace" {
		t.Errorf("defaults: %+v", opts)
	}
	full := map[string]string{
		agentapi.EnvKey: "k", agentapi.EnvPort: "65535", agentapi.EnvUserID: "0",
		agentapi.EnvWorkdir: "/srv/w", agentapi.EnvListen: "127.0.0.1",
	}
	opts, err = optionsFromEnv(env(full))
	if err != nil || opts.Addr != "127.0.0.1:65535" || opts.UserID != 0 || opts.Workdir != "/srv/w" {
		t.Errorf("full: %+v, %v", opts, err)
	}
	full[agentapi.EnvListen] = "::1"
	if opts, err = optionsFromEnv(env(full)); err != nil || opts.Addr != "[::1]:65535" {
		t.Errorf("ipv6: %+v, %v", opts, err)
	}

	bad := []struct {
		set  map[string]string
		want string
	}{
		{map[string]string{agentapi.EnvKey: ""}, "BERTH_AGENT_KEY is not set"},
		{map[string]string{agentapi.EnvPort: ""}, "BERTH_AGENT_PORT is not set"},
		{map[string]string{agentapi.EnvPort: "abc"}, `BERTH_AGENT_PORT="abc" is not a port number`},
		{map[string]string{agentapi.EnvPort: "0"}, `BERTH_AGENT_PORT="0" is not a port number`},
		{map[string]string{agentapi.EnvPort: "70000"}, `BERTH_AGENT_PORT="70000" is not a port number`},
		{map[string]string{agentapi.EnvUserID: "-1"}, `BERTH_USER_ID="-1" is not a user id`},
		{map[string]string{agentapi.EnvUserID: "bob"}, `BERTH_USER_ID="bob" is not a user id`},
		{map[string]string{agentapi.EnvWorkdir: "work"}, `BERTH_WORKDIR="work" is not an absolute path`},
		{map[string]string{agentapi.EnvListen: "0.0.0.0:80"}, `BERTH_AGENT_ADDRESS="0.0.0.0:80" is not a host address`},
	}
	for _, tt := range bad {
		m := map[string]string{agentapi.EnvKey: "k", agentapi.EnvPort: "8000"}
		for k, v := range tt.set {
			m[k] = v
		}
		if _, err := optionsFromEnv(env(m)); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: err = %v, want %q", tt.set, err, tt.want)
		}
	}
}

func TestNewLogger(t *testing.T) {
	var buf bytes.Buffer
	log, err := newLogger(&buf, "json", "debug")
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("hello", "k", 1)
	if !strings.HasPrefix(buf.String(), `{"time":`) || !strings.Contains(buf.String(), `"msg":"hello"`) {
		t.Errorf("json log = %q", buf.String())
	}
	buf.Reset()
	log, _ = newLogger(&buf, "", "")
	log.Debug("hidden")
	log.Info("shown")
	if strings.Contains(buf.String(), "hidden") || !strings.Contains(buf.String(), "msg=shown") {
		t.Errorf("text log = %q", buf.String())
	}
	if _, err := newLogger(io.Discard, "xml", ""); err == nil {
		t.Error("format xml accepted")
	}
	if _, err := newLogger(io.Discard, "", "loud"); err == nil {
		t.Error("level loud accepted")
	}
}

func TestRunBadEnvExits2WithOneLine(t *testing.T) {
	var stderr bytes.Buffer
	code := run(env(map[string]string{agentapi.EnvKey: "k", agentapi.EnvPort: "abc"}), &stderr)
	if code != 2 {
		t.Errorf("exit code %d, want 2", code)
	}
	if got := stderr.String(); got != "berth-agent: BERTH_AGENT_PORT=\"abc\" is not a port number (1-65535)\n" {
		t.Errorf("stderr = %q", got)
	}
}

// freePort finds a port nobody listens on right now.
func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// The real program: starts from the environment, serves, keeps the key
// from its children, and exits 0 promptly on SIGTERM.
func TestBinary(t *testing.T) {
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	cmd := exec.Command(exe)
	cmd.Env = append(os.Environ(),
		childEnv+"=1",
		"GORACE=atexit_sleep_ms=0", // under -race the exit would wait 1s

		agentapi.EnvKey+"=binary-key",
		agentapi.EnvPort+"="+port,
		agentapi.EnvListen+"=127.0.0.1",
		agentapi.EnvUserID+"="+strconv.Itoa(os.Getuid()),
		agentapi.EnvWorkdir+"="+t.TempDir(),
		agentapi.EnvLogFormat+"=json",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-waited
		}
	})

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	c := agentapi.New("http://127.0.0.1:"+port, "binary-key", &http.Client{Transport: tr})
	deadline := time.Now().Add(10 * time.Second)
	for c.Alive(t.Context()) != nil {
		if time.Now().After(deadline) {
			t.Fatalf("agent not alive after 10s; stderr:\n%s", stderr.String())
		}
		select {
		case err := <-waited:
			t.Fatalf("agent exited: %v; stderr:\n%s", err, stderr.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	out, _, exit, err := c.ExecOutput(t.Context(), agentapi.ExecRequest{Command: "env"})
	if err != nil || exit.ExitCode != 0 {
		t.Fatalf("exec env: %+v, %v", exit, err)
	}
	if bytes.Contains(out, []byte("binary-key")) || bytes.Contains(out, []byte("BERTH_")) {
		t.Errorf("child environment shows the agent's variables:\n%s", out)
	}

	t0 := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-waited:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Errorf("exit after SIGTERM: %v; stderr:\n%s", err, stderr.String())
		}
	case <-time.After(5 * time.Second):
		t.Fatal("agent still running 5s after SIGTERM")
	}
	if el := time.Since(t0); el > time.Second {
		t.Errorf("stopping took %v", el)
	}
	if !strings.Contains(stderr.String(), `"msg":"agent stopped"`) {
		t.Errorf("no JSON stop line in stderr:\n%s", stderr.String())
	}
}
