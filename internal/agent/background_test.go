package agent

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"os"
	"reflect"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/agentapi"
)

// bgStart starts a background process and fails the test if it cannot.
func (a *testAgent) bgStart(t *testing.T, req agentapi.ProcessRequest) agentapi.ProcessInfo {
	t.Helper()
	info, err := a.client.StartProcess(t.Context(), req)
	if err != nil {
		t.Fatalf("start %+v: %v", req, err)
	}
	// A quick process may have exited already.
	if info.ID == "" || info.PID <= 0 || info.State == "" || info.Started.IsZero() {
		t.Fatalf("start %+v: answer %+v", req, info)
	}
	return info
}

// bgWait waits (10s at most) for the process to exit.
func (a *testAgent) bgWait(t *testing.T, ref string) agentapi.ProcessInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	info, err := a.client.WaitProcess(ctx, ref, 0)
	if err != nil {
		t.Fatalf("wait %s: %v", ref, err)
	}
	if info.State != agentapi.ProcessExited {
		t.Fatalf("wait %s: %+v", ref, info)
	}
	return info
}

// bgCollect is the output of a ProcessOutput call, by stream.
type bgCollect struct {
	stdout, stderr, all bytes.Buffer
	events              []agentapi.OutputEvent
}

func (c *bgCollect) on(ev agentapi.OutputEvent) error {
	c.events = append(c.events, ev)
	switch ev.Type {
	case agentapi.OutputStdout:
		c.stdout.Write(ev.Data)
		c.all.Write(ev.Data)
	case agentapi.OutputStderr:
		c.stderr.Write(ev.Data)
		c.all.Write(ev.Data)
	}
	return nil
}

func (a *testAgent) bgOutput(t *testing.T, ref string, off int64, follow bool) (*bgCollect, agentapi.ProcessOutput) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var c bgCollect
	out, err := a.client.ProcessOutput(ctx, ref, off, follow, c.on)
	if err != nil {
		t.Fatalf("output of %s from %d (follow %v): %v", ref, off, follow, err)
	}
	return &c, out
}

// bgAPIError asserts that err is an *APIError with the status and code,
// whose message mentions each of words.
func bgAPIError(t *testing.T, err error, status int, code string, words ...string) {
	t.Helper()
	var ae *agentapi.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("got %v, want an *APIError %d", err, status)
	}
	if ae.Status != status || ae.Err.Code != code {
		t.Errorf("got %d %s (%q), want %d %s", ae.Status, ae.Err.Code, ae.Err.Message, status, code)
	}
	for _, w := range words {
		if !strings.Contains(ae.Err.Message, w) {
			t.Errorf("message %q does not mention %q", ae.Err.Message, w)
		}
	}
}

func TestBgStartListOutput(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	info := a.bgStart(t, agentapi.ProcessRequest{Command: "echo out; echo err >&2; echo out2; exit 3", Name: "job", Env: map[string]string{"X": "1"}})
	if info.Name != "job" || info.Command == "" || info.Cwd != a.workdir || info.BufferBytes != agentapi.DefaultProcessBufferBytes {
		t.Errorf("start answer %+v", info)
	}
	end := a.bgWait(t, info.ID)
	if end.ExitCode != 3 || end.Signal != "" || end.Ended.Before(end.Started) || end.OutputBytes != int64(len("out\nerr\nout2\n")) {
		t.Errorf("exited %+v", end)
	}

	c, out := a.bgOutput(t, info.ID, 0, false)
	if c.stdout.String() != "out\nout2\n" || c.stderr.String() != "err\n" {
		t.Errorf("stdout %q stderr %q", c.stdout.String(), c.stderr.String())
	}
	if out.NextOffset != end.OutputBytes || out.DroppedBytes != 0 || out.Process.State != agentapi.ProcessExited {
		t.Errorf("output %+v", out)
	}
	// Offsets are contiguous across both streams.
	var off int64
	for _, ev := range out.Chunks {
		if ev.Offset != off {
			t.Errorf("chunk at %d, want %d", ev.Offset, off)
		}
		off += int64(len(ev.Data))
	}

	// By name and by id, in the list.
	byName, err := a.client.Process(t.Context(), "job")
	if err != nil || byName.ID != info.ID {
		t.Errorf("by name: %+v %v", byName, err)
	}
	list, err := a.client.Processes(t.Context())
	if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], byName) {
		t.Errorf("list %+v %v, want [%+v]", list, err, byName)
	}
	if _, err := os.Stat("/proc/" + strconv.Itoa(info.PID)); err == nil && alive(info.PID) {
		t.Errorf("process %d still runs after its exit was reported", info.PID)
	}
}

func TestBgOffsets(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	info := a.bgStart(t, agentapi.ProcessRequest{Command: "printf 0123456789"})
	a.bgWait(t, info.ID)
	for _, off := range []int64{0, 4, 9, 10} {
		c, out := a.bgOutput(t, info.ID, off, false)
		if want := "0123456789"[off:]; c.all.String() != want || out.NextOffset != 10 {
			t.Errorf("from %d: %q next %d, want %q next 10", off, c.all.String(), out.NextOffset, want)
		}
		fc, fout := a.bgOutput(t, info.ID, off, true)
		if want := "0123456789"[off:]; fc.all.String() != want || fout.NextOffset != 10 || fout.Process.ExitCode != 0 {
			t.Errorf("follow from %d: %q %+v", off, fc.all.String(), fout)
		}
	}
	_, err := a.client.ProcessOutput(t.Context(), info.ID, 11, false, nil)
	bgAPIError(t, err, 400, agentapi.CodeBadRequest, `"offset"`, "11", "10")

	base := a.url + agentapi.ProcessPath(info.ID) + agentapi.ProcessOutputSuffix
	for q, word := range map[string]string{"?offset=x": `"offset"`, "?offset=-1": `"offset"`, "?follow=maybe": `"follow"`} {
		status, _, body := call(t, "GET", base+q, testKey, "")
		if status != 400 || !strings.Contains(body["message"].(string), word) {
			t.Errorf("%s: %d %v", q, status, body)
		}
	}
}

func TestBgFollowStreamsUntilExit(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	info := a.bgStart(t, agentapi.ProcessRequest{Command: "for i in 1 2 3 4 5; do echo $i; sleep 0.05; done; echo bye >&2; exit 4"})
	c, out := a.bgOutput(t, info.ID, 0, true)
	if c.stdout.String() != "1\n2\n3\n4\n5\n" || c.stderr.String() != "bye\n" {
		t.Errorf("stdout %q stderr %q", c.stdout.String(), c.stderr.String())
	}
	if out.Process.State != agentapi.ProcessExited || out.Process.ExitCode != 4 || out.NextOffset != 14 {
		t.Errorf("end %+v", out)
	}
	// A second reader starting late gets the same bytes.
	c2, _ := a.bgOutput(t, info.ID, 0, true)
	if c2.all.String() != c.all.String() {
		t.Errorf("second reader got %q, first %q", c2.all.String(), c.all.String())
	}
}

func TestBgRingDropsOldest(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	const n, keep = 200_000, 1000
	info := a.bgStart(t, agentapi.ProcessRequest{
		Argv:        helperArgv(t),
		Env:         map[string]string{helperEnv: "pattern " + strconv.Itoa(n)},
		BufferBytes: keep,
	})
	end := a.bgWait(t, info.ID)
	if end.OutputBytes != n || end.DroppedBytes != n-keep || end.BufferBytes != keep {
		t.Errorf("exited %+v", end)
	}
	want := pattern(n)[n-keep:]
	c, out := a.bgOutput(t, info.ID, 10, false)
	if out.DroppedBytes != n-keep-10 || !bytes.Equal(c.all.Bytes(), want) || out.NextOffset != n {
		t.Errorf("from 10: dropped %d, %d bytes (match %v), next %d", out.DroppedBytes, c.all.Len(), bytes.Equal(c.all.Bytes(), want), out.NextOffset)
	}
	if ev := c.events[0]; ev.Type != agentapi.OutputDropped || ev.DroppedBytes != n-keep-10 || ev.Offset != n-keep {
		t.Errorf("first event %+v, want dropped", ev)
	}
	fc, fout := a.bgOutput(t, info.ID, 0, true)
	if fout.DroppedBytes != n-keep || !bytes.Equal(fc.all.Bytes(), want) {
		t.Errorf("follow: dropped %d, %d bytes", fout.DroppedBytes, fc.all.Len())
	}
	if ev := fc.events[0]; ev.Type != agentapi.OutputDropped || ev.Offset != n-keep {
		t.Errorf("follow: first event %+v, want dropped", ev)
	}
	c3, out3 := a.bgOutput(t, info.ID, n-100, false)
	if out3.DroppedBytes != 0 || !bytes.Equal(c3.all.Bytes(), want[keep-100:]) {
		t.Errorf("from n-100: dropped %d, %d bytes", out3.DroppedBytes, c3.all.Len())
	}
}

func TestBgStdin(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	info := a.bgStart(t, agentapi.ProcessRequest{Argv: []string{"cat"}})
	for _, part := range []string{"hello ", "world\n"} {
		n, err := a.client.WriteStdin(t.Context(), info.ID, []byte(part), false)
		if err != nil || n != len(part) {
			t.Fatalf("write %q: %d %v", part, n, err)
		}
	}
	if _, err := a.client.WriteStdin(t.Context(), info.ID, []byte("end\n"), true); err != nil {
		t.Fatal(err)
	}
	end := a.bgWait(t, info.ID)
	if end.ExitCode != 0 {
		t.Errorf("cat exited %+v", end)
	}
	c, _ := a.bgOutput(t, info.ID, 0, false)
	if c.stdout.String() != "hello world\nend\n" {
		t.Errorf("stdout %q", c.stdout.String())
	}
	_, err := a.client.WriteStdin(t.Context(), info.ID, []byte("late"), false)
	bgAPIError(t, err, 409, agentapi.CodeConflict, info.ID)

	status, _, body := call(t, "POST", a.url+agentapi.ProcessPath(info.ID)+agentapi.ProcessStdinSuffix, testKey, `{"data":"%%%"}`)
	if status != 400 || !strings.Contains(body["message"].(string), `"data"`) {
		t.Errorf("bad base64: %d %v", status, body)
	}
}

func TestBgStdinEOFThenWriteConflicts(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	// The process ignores stdin's EOF and runs on.
	info := a.bgStart(t, agentapi.ProcessRequest{Command: "cat; echo closed; exec sleep 1000"})
	t.Cleanup(func() { _, _ = a.client.RemoveProcess(context.Background(), info.ID) })
	if _, err := a.client.WriteStdin(t.Context(), info.ID, nil, true); err != nil {
		t.Fatal(err)
	}
	_, err := a.client.WriteStdin(t.Context(), info.ID, []byte("x"), false)
	bgAPIError(t, err, 409, agentapi.CodeConflict, "eof")
}

func TestBgSignal(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	// The signal goes to the whole group: a child of the shell gets it too.
	info := a.bgStart(t, agentapi.ProcessRequest{Command: "sleep 1000 & echo $!; wait"})
	out, _ := a.bgOutputUntil(t, info.ID, "\n")
	child, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("child pid %q", out)
	}
	got, err := a.client.SignalProcess(t.Context(), info.ID, "TERM")
	if err != nil || got.ID != info.ID {
		t.Fatalf("signal: %+v %v", got, err)
	}
	if end := a.bgWait(t, info.ID); end.Signal != "SIGTERM" || end.ExitCode != 143 {
		t.Errorf("exit %+v, want SIGTERM 143", end)
	}
	waitGone(t, child)
	_, err = a.client.SignalProcess(t.Context(), info.ID, "TERM")
	bgAPIError(t, err, 409, agentapi.CodeConflict, "exited")

	// A process that exited and left children in its group (a runaway
	// loop's leftovers): the signal reaches them; with none left, 409.
	info = a.bgStart(t, agentapi.ProcessRequest{Command: "sleep 1000 >/dev/null 2>&1 & echo $!"})
	out, _ = a.bgOutputUntil(t, info.ID, "\n")
	if child, err = strconv.Atoi(strings.TrimSpace(out)); err != nil {
		t.Fatalf("child pid %q", out)
	}
	if end := a.bgWait(t, info.ID); end.ExitCode != 0 {
		t.Fatalf("exit %+v", end)
	}
	if _, err := a.client.SignalProcess(t.Context(), info.ID, "KILL"); err != nil {
		t.Fatalf("signal the leftovers of an exited process: %v", err)
	}
	waitGone(t, child)
	_, err = a.client.SignalProcess(t.Context(), info.ID, "KILL")
	bgAPIError(t, err, 409, agentapi.CodeConflict, "no process of its group is left")

	// Names in any case, with or without SIG, numbers as strings or JSON numbers.
	for _, tc := range []struct {
		body, want string
		code       int
	}{
		{`{"signal":"sigint"}`, "SIGINT", 130},
		{`{"signal":9}`, "SIGKILL", 137},
		{`{"signal":"1"}`, "SIGHUP", 129},
		{`{"signal":"SIGUSR1"}`, "SIGUSR1", 138},
		{`{}`, "SIGTERM", 143},
	} {
		info := a.bgStart(t, agentapi.ProcessRequest{Argv: []string{"sleep", "1000"}})
		status, _, body := call(t, "POST", a.url+agentapi.ProcessPath(info.ID)+agentapi.ProcessSignalSuffix, testKey, tc.body)
		if status != 200 {
			t.Fatalf("%s: %d %v", tc.body, status, body)
		}
		if end := a.bgWait(t, info.ID); end.Signal != tc.want || end.ExitCode != tc.code {
			t.Errorf("%s: exit %+v, want %s %d", tc.body, end, tc.want, tc.code)
		}
	}

	info = a.bgStart(t, agentapi.ProcessRequest{Argv: []string{"sleep", "1000"}})
	t.Cleanup(func() { _, _ = a.client.RemoveProcess(context.Background(), info.ID) })
	for _, bad := range []string{`{"signal":"NOPE"}`, `{"signal":0}`, `{"signal":65}`, `{"signal":true}`, `{"signal":"-3"}`, `{"sig":"TERM"}`} {
		status, _, body := call(t, "POST", a.url+agentapi.ProcessPath(info.ID)+agentapi.ProcessSignalSuffix, testKey, bad)
		if status != 400 || !strings.Contains(body["message"].(string), "sig") {
			t.Errorf("%s: %d %v", bad, status, body)
		}
	}
}

// bgOutputUntil follows the output until it contains s, and returns it.
func (a *testAgent) bgOutputUntil(t *testing.T, ref, s string) (string, agentapi.ProcessOutput) {
	t.Helper()
	errFound := errors.New("found")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var c bgCollect
	out, err := a.client.ProcessOutput(ctx, ref, 0, true, func(ev agentapi.OutputEvent) error {
		c.on(ev)
		if strings.Contains(c.all.String(), s) {
			return errFound
		}
		return nil
	})
	if !errors.Is(err, errFound) {
		t.Fatalf("output of %s never had %q (got %q): %v", ref, s, c.all.String(), err)
	}
	return c.all.String(), out
}

func TestBgWaitTimeoutAndRemove(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	info := a.bgStart(t, agentapi.ProcessRequest{Argv: []string{"sleep", "1000"}, Name: "sleeper"})
	got, err := a.client.WaitProcess(t.Context(), "sleeper", 20*time.Millisecond)
	if err != nil || !got.Running() || got.ID != info.ID {
		t.Errorf("wait with timeout: %+v %v", got, err)
	}
	status, _, body := call(t, "POST", a.url+agentapi.ProcessPath(info.ID)+agentapi.ProcessWaitSuffix+"?timeout_ms=soon", testKey, "")
	if status != 400 || !strings.Contains(body["message"].(string), `"timeout_ms"`) {
		t.Errorf("bad timeout: %d %v", status, body)
	}
	removed, err := a.client.RemoveProcess(t.Context(), "sleeper")
	if err != nil || removed.State != agentapi.ProcessExited || removed.Signal != "SIGKILL" {
		t.Errorf("remove: %+v %v", removed, err)
	}
	waitGone(t, info.PID)
	_, err = a.client.Process(t.Context(), info.ID)
	bgAPIError(t, err, 404, agentapi.CodeNotFound, strconv.Quote(info.ID))
	_, err = a.client.RemoveProcess(t.Context(), "sleeper")
	bgAPIError(t, err, 404, agentapi.CodeNotFound, `"sleeper"`)
	if list, _ := a.client.Processes(t.Context()); len(list) != 0 {
		t.Errorf("list after remove: %+v", list)
	}
}

// A background process outlives the request (and connection) that started it.
func TestBgSurvivesClientDisconnect(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	tr := &http.Transport{}
	first := agentapi.New(a.url, testKey, &http.Client{Transport: tr})
	ctx, cancel := context.WithCancel(t.Context())
	info, err := first.StartProcess(ctx, agentapi.ProcessRequest{Command: "read line; echo got $line"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	tr.CloseIdleConnections()
	if !alive(info.PID) {
		t.Fatalf("process %d died with its client", info.PID)
	}
	// It still waits for input, which a new client gives.
	if _, err := a.client.WriteStdin(t.Context(), info.ID, []byte("later\n"), false); err != nil {
		t.Fatal(err)
	}
	a.bgWait(t, info.ID)
	if c, _ := a.bgOutput(t, info.ID, 0, false); c.stdout.String() != "got later\n" {
		t.Errorf("stdout %q", c.stdout.String())
	}
}

// A follower that goes away does not stop the process either.
func TestBgFollowerDisconnectKeepsProcess(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	info := a.bgStart(t, agentapi.ProcessRequest{Command: "echo ready; read x; echo $x"})
	a.bgOutputUntil(t, info.ID, "ready\n") // returns by ending the follow early
	if _, err := a.client.WriteStdin(t.Context(), info.ID, []byte("still\n"), true); err != nil {
		t.Fatal(err)
	}
	if end := a.bgWait(t, info.ID); end.ExitCode != 0 {
		t.Errorf("exit %+v", end)
	}
	if c, _ := a.bgOutput(t, info.ID, 0, false); c.stdout.String() != "ready\nstill\n" {
		t.Errorf("stdout %q", c.stdout.String())
	}
}

func TestBgKeepsBoundedExited(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	a.srv.bg.mu.Lock()
	a.srv.bg.keepExited = 3
	a.srv.bg.mu.Unlock()
	running := a.bgStart(t, agentapi.ProcessRequest{Argv: []string{"sleep", "1000"}})
	t.Cleanup(func() { _, _ = a.client.RemoveProcess(context.Background(), running.ID) })
	var ids []string
	for i := range 5 {
		info := a.bgStart(t, agentapi.ProcessRequest{Command: "echo " + strconv.Itoa(i)})
		a.bgWait(t, info.ID)
		ids = append(ids, info.ID)
	}
	list, err := a.client.Processes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range list {
		got = append(got, p.ID)
	}
	if want := append([]string{running.ID}, ids[2:]...); !reflect.DeepEqual(got, want) {
		t.Errorf("kept %v, want %v", got, want)
	}
	if c, _ := a.bgOutput(t, ids[4], 0, false); c.stdout.String() != "4\n" {
		t.Errorf("newest output %q", c.stdout.String())
	}
	_, err = a.client.Process(t.Context(), ids[0])
	bgAPIError(t, err, 404, agentapi.CodeNotFound)
}

func TestBgNames(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	first := a.bgStart(t, agentapi.ProcessRequest{Argv: []string{"sleep", "1000"}, Name: "web"})
	_, err := a.client.StartProcess(t.Context(), agentapi.ProcessRequest{Argv: []string{"true"}, Name: "web"})
	bgAPIError(t, err, 409, agentapi.CodeConflict, `"name"`, `"web"`, first.ID)
	if _, err := a.client.SignalProcess(t.Context(), "web", "KILL"); err != nil {
		t.Fatal(err)
	}
	a.bgWait(t, "web")
	// Once it exited, the name is free; the name then means the newest.
	second := a.bgStart(t, agentapi.ProcessRequest{Command: "exit 0", Name: "web"})
	a.bgWait(t, second.ID)
	if got, err := a.client.Process(t.Context(), "web"); err != nil || got.ID != second.ID {
		t.Errorf("web is %+v %v, want id %s", got, err, second.ID)
	}
	if got, err := a.client.Process(t.Context(), first.ID); err != nil || got.Signal != "SIGKILL" {
		t.Errorf("first by id: %+v %v", got, err)
	}
}

func TestBgRequestErrors(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	for _, tc := range []struct {
		name, method, path, body string
		status                   int
		code, word               string
	}{
		{"both argv and command", "POST", "/api/v1/processes", `{"argv":["true"],"command":"true"}`, 400, agentapi.CodeBadRequest, `"argv"`},
		{"neither", "POST", "/api/v1/processes", `{"name":"x"}`, 400, agentapi.CodeBadRequest, `"command"`},
		{"unknown field", "POST", "/api/v1/processes", `{"argv":["true"],"nme":"x"}`, 400, agentapi.CodeBadRequest, `"nme"`},
		{"name is an id", "POST", "/api/v1/processes", `{"argv":["true"],"name":"12"}`, 400, agentapi.CodeBadRequest, `"name"`},
		{"name with slash", "POST", "/api/v1/processes", `{"argv":["true"],"name":"a/b"}`, 400, agentapi.CodeBadRequest, `"name"`},
		{"negative buffer", "POST", "/api/v1/processes", `{"argv":["true"],"buffer_bytes":-1}`, 400, agentapi.CodeBadRequest, `"buffer_bytes"`},
		{"huge buffer", "POST", "/api/v1/processes", `{"argv":["true"],"buffer_bytes":1e12}`, 400, agentapi.CodeBadRequest, `"buffer_bytes"`},
		{"program not found", "POST", "/api/v1/processes", `{"argv":["no-such-program"]}`, 400, agentapi.CodeBadRequest, "no-such-program"},
		{"bad cwd", "POST", "/api/v1/processes", `{"argv":["true"],"cwd":"/no/such/dir"}`, 400, agentapi.CodeBadRequest, "/no/such/dir"},
		{"reserved env", "POST", "/api/v1/processes", `{"argv":["true"],"env":{"BERTH_AGENT_KEY":"x"}}`, 400, agentapi.CodeBadRequest, "BERTH_AGENT_KEY"},
		{"unknown id", "GET", "/api/v1/processes/999", "", 404, agentapi.CodeNotFound, `"999"`},
		{"unknown name", "GET", "/api/v1/processes/nope/output", "", 404, agentapi.CodeNotFound, `"nope"`},
		{"unknown id wait", "POST", "/api/v1/processes/999/wait", "", 404, agentapi.CodeNotFound, `"999"`},
		{"unknown id stdin", "POST", "/api/v1/processes/999/stdin", `{}`, 404, agentapi.CodeNotFound, `"999"`},
		{"unknown id signal", "POST", "/api/v1/processes/999/signal", `{}`, 404, agentapi.CodeNotFound, `"999"`},
		{"unknown id delete", "DELETE", "/api/v1/processes/999", "", 404, agentapi.CodeNotFound, `"999"`},
		{"wrong method", "PUT", "/api/v1/processes", "", 405, agentapi.CodeMethodNotAllowed, "POST"},
		{"wrong method one", "POST", "/api/v1/processes/1", "", 405, agentapi.CodeMethodNotAllowed, "DELETE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := call(t, tc.method, a.url+tc.path, testKey, tc.body)
			if status != tc.status || body["code"] != tc.code || !strings.Contains(body["message"].(string), tc.word) {
				t.Errorf("%d %v, want %d %s mentioning %s", status, body, tc.status, tc.code, tc.word)
			}
		})
	}
	if status, _, _ := call(t, "GET", a.url+"/api/v1/processes", "", ""); status != 401 {
		t.Errorf("without key: %d", status)
	}
}

// A daemon that keeps the output pipes open does not keep the process
// "running": after the grace its output is closed and the exit recorded.
func TestBgGrandchildHoldingPipes(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	info := a.bgStart(t, agentapi.ProcessRequest{Command: "sleep 1000 & echo $!"})
	end := a.bgWait(t, info.ID)
	c, _ := a.bgOutput(t, info.ID, 0, false)
	child, err := strconv.Atoi(strings.TrimSpace(c.stdout.String()))
	if err != nil {
		t.Fatalf("child pid %q", c.stdout.String())
	}
	t.Cleanup(func() {
		_ = syscall.Kill(child, syscall.SIGKILL)
		waitGone(t, child)
	})
	if end.ExitCode != 0 || !alive(child) {
		t.Errorf("exit %+v; child alive %v", end, alive(child))
	}
}

func TestBgCloseKillsAndRefuses(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	info := a.bgStart(t, agentapi.ProcessRequest{Command: "sleep 1000 & sleep 1000"})
	a.srv.Close()
	waitGone(t, info.PID)
	got, err := a.client.Process(t.Context(), info.ID)
	if err != nil || got.State != agentapi.ProcessExited || got.Signal != "SIGKILL" {
		t.Errorf("after close: %+v %v", got, err)
	}
	_, err = a.client.StartProcess(t.Context(), agentapi.ProcessRequest{Argv: []string{"true"}})
	bgAPIError(t, err, 503, agentapi.CodeUnavailable)
	a.waitProcsDone(t)
}

func TestBgProcessCountsInServerInfo(t *testing.T) {
	t.Parallel()
	a := newTestAgent(t, nil)
	info := a.bgStart(t, agentapi.ProcessRequest{Argv: []string{"sleep", "1000"}})
	si, err := a.client.ServerInfo(t.Context())
	if err != nil || si.Processes != 1 || si.IdleSeconds != 0 {
		t.Errorf("server info %+v %v", si, err)
	}
	if _, err := a.client.RemoveProcess(t.Context(), info.ID); err != nil {
		t.Fatal(err)
	}
	a.waitProcsDone(t)
}

func TestBgProcessRequestWireInStep(t *testing.T) {
	t.Parallel()
	api := reflect.TypeFor[agentapi.ProcessRequest]()
	wire := reflect.TypeFor[bgProcessRequestWire]()
	if api.NumField() != wire.NumField() {
		t.Fatalf("ProcessRequest has %d fields, the wire type %d", api.NumField(), wire.NumField())
	}
	for i := range api.NumField() {
		af, wf := api.Field(i), wire.Field(i)
		an, _, _ := strings.Cut(af.Tag.Get("json"), ",")
		wn, _, _ := strings.Cut(wf.Tag.Get("json"), ",")
		if af.Name != wf.Name || an != wn || af.Type != wf.Type {
			t.Errorf("field %d: %s %q %s vs %s %q %s", i, af.Name, an, af.Type, wf.Name, wn, wf.Type)
		}
	}
}
