package docker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/sandbox"
)

// sh runs a shell line in the sandbox as its user.
func sh(t *testing.T, h *harness, sb sandbox.Sandbox, line string) (string, int) {
	t.Helper()
	return run(t, h, sb, "sh", "-c", line)
}

func TestSecureDefaults(t *testing.T) {
	h := newHarness(t, nil)
	sb := h.create(t, spec(t))
	out, _ := sh(t, h, sb, "id -u; grep -E '^(CapBnd|CapEff|NoNewPrivs):' /proc/self/status")
	// Bounding set: CHOWN DAC_OVERRIDE FOWNER FSETID KILL SETGID SETUID NET_BIND_SERVICE;
	// the sandbox user has no effective capabilities at all.
	want := "1000\nCapEff:\t0000000000000000\nCapBnd:\t00000000000004fb\nNoNewPrivs:\t1\n"
	if out != want {
		t.Errorf("identity and privileges:\n%s\nwant:\n%s", out, want)
	}
	res, err := env.Client.ContainerInspect(context.Background(), sb.ContainerID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hc := res.Container.HostConfig
	if hc.Privileged || hc.PidsLimit == nil || *hc.PidsLimit != defaultPidsLimit {
		t.Errorf("privileged %v, pids limit %v", hc.Privileged, hc.PidsLimit)
	}
	for _, m := range res.Container.Mounts {
		if strings.Contains(m.Source, "docker.sock") {
			t.Errorf("the Docker socket is mounted: %+v", m)
		}
	}
	for _, p := range sb.Ports {
		if p.HostIP != "127.0.0.1" {
			t.Errorf("port %s published on %s", p.Name, p.HostIP)
		}
	}
}

func TestLimitsApplied(t *testing.T) {
	h := newHarness(t, nil)
	s := spec(t)
	s.Limits = sandbox.Limits{Memory: 128 << 20, MemorySwap: 128 << 20, NanoCPUs: 500_000_000, PidsLimit: 64}
	sb := h.create(t, s)
	res, err := env.Client.ContainerInspect(context.Background(), sb.ContainerID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r := res.Container.HostConfig.Resources
	if r.Memory != 128<<20 || r.MemorySwap != 128<<20 || r.NanoCPUs != 500_000_000 || *r.PidsLimit != 64 {
		t.Errorf("limits in docker inspect: memory %d swap %d cpus %d pids %d", r.Memory, r.MemorySwap, r.NanoCPUs, *r.PidsLimit)
	}
	if out, _ := sh(t, h, sb, "cat /sys/fs/cgroup/pids/pids.max"); out != "64\n" {
		t.Errorf("pids.max in the sandbox: %q", out)
	}
	// The limit holds: a burst of 100 short sleepers runs into it.
	if out, _ := sh(t, h, sb, `for i in $(seq 1 100); do sleep 2 & done`); !strings.Contains(out, "can't fork") {
		t.Errorf("a burst of 100 processes under a limit of 64 went through: %q", out)
	}
	// Once they are gone, commands start again; until then the agent says
	// why it cannot start one.
	agent := agentapi.New(sb.AgentURL, sb.Key, h.rt.HTTPClient())
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, exit, err := agent.ExecOutput(context.Background(), agentapi.ExecRequest{Argv: []string{"echo", "ok"}})
		if err == nil && exit.ExitCode == 0 && string(out) == "ok\n" {
			break
		}
		var apiErr *agentapi.APIError
		if err != nil && (!errors.As(err, &apiErr) || apiErr.Status != 429) {
			t.Fatalf("exec at the limit: %v, want 429 busy", err)
		}
		if time.Now().After(deadline) {
			t.Fatal("commands never started again after the burst")
		}
		time.Sleep(50 * time.Millisecond) // polling the agent: the sleepers end on their own
	}
}

// A sandbox held at its pids limit keeps its agent: file operations,
// which need threads as the sandbox user, and execs all get an answer
// (429 for what cannot start), the container keeps running, and once the
// leftovers of the runaway loop are killed commands run again. Before the
// agent kept its threads, the Go runtime died failing to make one here.
func TestAgentSurvivesPidsLimit(t *testing.T) {
	h := newHarness(t, nil)
	s := spec(t)
	s.Limits = sandbox.Limits{PidsLimit: 64}
	sb := h.create(t, s)
	ctx := t.Context()
	agent := agentapi.New(sb.AgentURL, sb.Key, h.rt.HTTPClient())
	if out, code := sh(t, h, sb, `for i in 1 2 3 4 5 6 7 8; do head -c 4000000 /dev/zero > /workspace/f$i; done; echo made`); code != 0 || out != "made\n" {
		t.Fatalf("make files: %d %q", code, out)
	}
	// A loop that forks sleepers until the limit refuses it (busybox sh
	// then exits), leaving them to hold every pid.
	loop, err := agent.StartProcess(ctx, agentapi.ProcessRequest{Command: `while :; do sleep 1000 & done`})
	if err != nil {
		t.Fatal(err)
	}
	if end, err := agent.WaitProcess(ctx, loop.ID, 30*time.Second); err != nil || end.Running() {
		t.Fatalf("the fork loop did not end at the limit: %+v %v", end, err)
	}
	var wg sync.WaitGroup
	for i := 1; i <= 8; i++ {
		wg.Go(func() {
			rc, err := agent.DownloadTar(ctx, fmt.Sprintf("/workspace/f%d", i))
			if err == nil {
				n, cerr := io.Copy(io.Discard, rc)
				rc.Close()
				if cerr != nil || n < 4000000 {
					t.Errorf("tar of f%d: %d bytes, %v", i, n, cerr)
				}
			} else {
				t.Errorf("tar of f%d at the limit: %v", i, err)
			}
			if _, err := agent.WriteFile(ctx, fmt.Sprintf("/workspace/w%d", i), strings.NewReader("data"), agentapi.WriteOptions{}); err != nil {
				t.Errorf("write at the limit: %v", err)
			}
			_, _, _, err = agent.ExecOutput(ctx, agentapi.ExecRequest{Argv: []string{"true"}})
			var apiErr *agentapi.APIError
			if err != nil && (!errors.As(err, &apiErr) || apiErr.Status != 429) {
				t.Errorf("exec at the limit: %v, want it run or 429", err)
			}
		})
	}
	wg.Wait()
	got, err := h.rt.Get(ctx, sb.ID)
	if err != nil || got.State != "running" {
		logs, _ := h.rt.Logs(ctx, sb.ID, sandbox.LogOptions{Tail: "30"})
		var tail []byte
		if logs != nil {
			tail, _ = io.ReadAll(logs)
			logs.Close()
		}
		t.Fatalf("sandbox at its pids limit: %s %v; log:\n%s", got.State, err, tail)
	}
	// The loop's shell has exited; its sleepers are still its group.
	if _, err := agent.SignalProcess(ctx, loop.ID, "KILL"); err != nil {
		t.Fatalf("kill the loop's leftovers: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, exit, err := agent.ExecOutput(ctx, agentapi.ExecRequest{Argv: []string{"echo", "ok"}})
		if err == nil && exit.ExitCode == 0 && string(out) == "ok\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("commands never ran again after the leftovers were killed: %v", err)
		}
		time.Sleep(50 * time.Millisecond) // polling the agent while the kernel reaps
	}
}

func TestMemoryLimitOOM(t *testing.T) {
	h := newHarness(t, nil)
	s := spec(t)
	s.Limits = sandbox.Limits{Memory: 64 << 20, MemorySwap: 64 << 20}
	sb := h.create(t, s)
	other := h.create(t, spec(t))
	// A hog within the limit completes.
	if out, code := sh(t, h, sb, `x=$(head -c 16000000 /dev/zero | tr '\0' a); echo ${#x}`); code != 0 || out != "16000000\n" {
		t.Fatalf("hog within the limit: exit %d, %q", code, out)
	}
	// Over it, the hog is OOM-killed (137) and the sandbox lives on.
	if _, code := sh(t, h, sb, `x=$(head -c 300000000 /dev/zero | tr '\0' a); echo ${#x}`); code != 137 {
		t.Errorf("hog over the limit: exit %d, want 137 (killed)", code)
	}
	if out, code := sh(t, h, sb, "echo alive"); code != 0 || out != "alive\n" {
		t.Errorf("sandbox after the OOM kill: %q %d", out, code)
	}
	if out, _ := sh(t, h, other, "echo untouched"); out != "untouched\n" {
		t.Errorf("the other sandbox: %q", out)
	}
	got, err := h.rt.Get(context.Background(), sb.ID)
	if err != nil || got.Status != sandbox.StatusRunning {
		t.Errorf("after OOM: %v %v", got.Status, err)
	}
}

func TestPublishedPortsAndEnv(t *testing.T) {
	h := newHarness(t, nil)
	s := spec(t)
	s.VSCode = true
	s.AppPorts = 2
	s.Publish = []int{8080}
	sb := h.create(t, s)
	byName := map[string]sandbox.Port{}
	for _, p := range sb.Ports {
		byName[p.Name] = p
	}
	rg := h.rt.opts.Ranges
	checks := []struct {
		name string
		min  int
		max  int
	}{{"agent", rg.Agent.Min, rg.Agent.Max}, {"vscode", rg.VSCode.Min, rg.VSCode.Max}, {"app1", rg.App1.Min, rg.App1.Max}, {"app2", rg.App2.Min, rg.App2.Max}, {"port-8080", rg.App1.Min, rg.App1.Max}}
	for _, c := range checks {
		p, ok := byName[c.name]
		if !ok || p.HostPort < c.min || p.HostPort > c.max || sb.URLs[c.name] == "" {
			t.Errorf("port %s: %+v (range %d-%d), url %q", c.name, p, c.min, c.max, sb.URLs[c.name])
		}
	}
	out, _ := sh(t, h, sb, `echo "$VSCODE_PORT $APP_PORT_1 $APP_PORT_2"`)
	if want := fmt.Sprintf("%d %d %d\n", byName["vscode"].Container, byName["app1"].Container, byName["app2"].Container); out != want {
		t.Errorf("port env %q, want %q", out, want)
	}
	// A server on APP_PORT_1 and one on 8080 inside are reached from the host.
	serve := `mkdir -p /tmp/$1 && echo hello-$1 > /tmp/$1/index.html && httpd -p $2 -h /tmp/$1`
	sh(t, h, sb, fmt.Sprintf(`set -- app $APP_PORT_1; %s; set -- p8080 8080; %s`, serve, serve))
	for name, want := range map[string]string{"app1": "hello-app\n", "port-8080": "hello-p8080\n"} {
		if got := httpGet(t, sb.URLs[name]+"/index.html"); got != want {
			t.Errorf("GET %s: %q, want %q", sb.URLs[name], got, want)
		}
	}
	// rm releases every reservation.
	if err := h.rt.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	if res := h.reservations(t); len(res) != 0 {
		t.Errorf("reservations after rm: %v", res)
	}
}

func TestNetworkNone(t *testing.T) {
	h := newHarness(t, nil)
	s := spec(t)
	s.Network = sandbox.NetworkNone
	sb := h.create(t, s)
	if !strings.HasPrefix(sb.AgentURL, "unix://") || len(sb.Ports) != 0 {
		t.Fatalf("agent %q ports %v", sb.AgentURL, sb.Ports)
	}
	if out, code := sh(t, h, sb, "ls /sys/class/net"); code != 0 || out != "lo\n" {
		t.Errorf("interfaces: %q (exit %d), want only lo", out, code)
	}
	// Found again from labels and mounts, as another berth process would.
	got, err := h.rt.Get(context.Background(), sb.ID)
	if err != nil || got.AgentURL != sb.AgentURL || got.Network != sandbox.NetworkNone {
		t.Errorf("Get: %+v %v", got, err)
	}
	dir := filepath.Dir(strings.TrimPrefix(sb.AgentURL, "unix://"))
	// Pause and resume work over the socket too.
	if _, err := h.rt.Pause(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.rt.Resume(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	if err := h.rt.Remove(context.Background(), sb.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("sandbox dir %s left after rm: %v", dir, err)
	}
}

func TestNetworkInternal(t *testing.T) {
	h := newHarness(t, nil)
	s := spec(t)
	s.Network = sandbox.NetworkInternal
	a := h.create(t, s)
	b := h.create(t, s)
	outside := h.create(t, spec(t)) // on the default bridge
	serve := `mkdir -p /tmp/w && echo hi > /tmp/w/index.html && httpd -p 8000 -h /tmp/w && hostname -i`
	bIP, _ := sh(t, h, b, serve)
	oIP, _ := sh(t, h, outside, serve)
	bIP, oIP = strings.TrimSpace(bIP), strings.TrimSpace(oIP)
	// (busybox's static wget crashes on name services; nc speaks HTTP/1.0.)
	get := func(ip string) (string, int) {
		return sh(t, h, a, `printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 3 `+ip+` 8000 | tail -n 1`)
	}
	if out, code := get(bIP); code != 0 || out != "hi\n" {
		t.Errorf("internal sandbox to internal sandbox %s: %q (exit %d)", bIP, out, code)
	}
	if out, _ := get(oIP); out == "hi\n" {
		t.Errorf("internal sandbox reached a sandbox outside its network (%s)", oIP)
	}
	// The sandbox on the bridge does reach the other one: the refusal above
	// is the network's doing.
	if out, code := sh(t, h, outside, `printf 'GET /index.html HTTP/1.0\r\n\r\n' | nc -w 3 `+oIP+` 8000 | tail -n 1`); code != 0 || out != "hi\n" {
		t.Errorf("bridge sandbox to itself %s: %q (exit %d)", oIP, out, code)
	}
}

func TestNetworkHost(t *testing.T) {
	h := newHarness(t, nil)
	s := spec(t)
	s.Network = sandbox.NetworkHost
	sb := h.create(t, s)
	if !strings.HasPrefix(sb.URLs["agent"], "http://127.0.0.1:") {
		t.Errorf("agent URL %q", sb.URLs["agent"])
	}
	// The published port answers too (not only the socket berth prefers).
	if got := httpGet(t, sb.URLs["agent"]+"/alive"); !strings.Contains(got, "ok") {
		t.Errorf("GET %s/alive: %q", sb.URLs["agent"], got)
	}
	hostIfaces, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	out, _ := sh(t, h, sb, "ls /sys/class/net | wc -l")
	if atoiTrim(out) != len(hostIfaces) {
		t.Errorf("sandbox sees %s interfaces, the host has %d", strings.TrimSpace(out), len(hostIfaces))
	}
}

func TestExtraNetworkMustExist(t *testing.T) {
	h := newHarness(t, nil)
	s := spec(t)
	s.Networks = []string{"berth-no-such-network-" + env.RunID}
	before := env.Containers(t)
	_, err := h.rt.Create(context.Background(), s)
	if err == nil || !strings.Contains(err.Error(), s.Networks[0]) {
		t.Fatalf("Create() = %v, want an error naming the network", err)
	}
	h.assertNothingLeft(t, before)
}

func httpGet(t *testing.T, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
		return ""
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func atoiTrim(s string) int {
	n, _ := strconv.Atoi(strings.TrimSpace(s))
	return n
}

func TestReadOnlyRootfs(t *testing.T) {
	h := newHarness(t, nil)
	s := spec(t)
	s.ReadOnlyRootfs = true
	sb := h.create(t, s)
	out, _ := sh(t, h, sb, `for d in /workspace /tmp "$HOME"; do touch "$d/f" && echo "$d writable"; done; touch /etc/f 2>/dev/null || echo "/etc read-only"; id -u`)
	want := "/workspace writable\n/tmp writable\n/home/berth writable\n/etc read-only\n1000\n"
	if out != want {
		t.Errorf("read-only root:\n%s\nwant:\n%s", out, want)
	}
}
