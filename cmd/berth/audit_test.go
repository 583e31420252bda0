package main

import (
	"bytes"
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berth-dev/berth/internal/audit"
)

// runBerth runs the CLI in-process with args and returns stdout, stderr
// and the exit code.
func runBerth(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs(args)
	code := exitCode(&errb, root.ExecuteContext(context.Background()))
	return out.String(), errb.String(), code
}

// berth audit --file reads a trail without a server: every tenant's
// records, completions merged, filtered by tenant, sandbox prefix, time
// and count.
func TestAuditFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	trail, err := audit.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	old := time.Now().Add(-2 * time.Hour).UTC()
	now := time.Now().UTC()
	seven := 7
	for _, r := range []audit.Record{
		{ID: "a1", Time: old, Tenant: "alice", Sandbox: "aaaa1111", Action: audit.ActionExec, What: "ls", Level: "LOW", Decision: audit.Allowed},
		{ID: "b1", Time: now, Tenant: "bob", Sandbox: "bbbb2222", Action: audit.ActionExec, What: "rm -rf /", Level: "HIGH", Rules: []string{"rm-root"}, Decision: audit.Denied},
		{ID: "a2", Time: now, Tenant: "alice", Sandbox: "aaaa1111", Action: audit.ActionExec, What: "exit 7", Level: "LOW", Decision: audit.Allowed},
		{ID: "a2", Time: now, Tenant: "alice", Sandbox: "aaaa1111", ExitCode: &seven, DurationMS: 3},
		{ID: "a3", Time: now, Tenant: "alice", Sandbox: "cccc3333", Action: audit.ActionFileWrite, What: "/etc/passwd", Level: "HIGH", Decision: audit.Audited},
	} {
		if err := trail.Append(r); err != nil {
			t.Fatal(err)
		}
	}
	// The server may hold the file open meanwhile; reading does not
	// write it.
	defer trail.Close()

	ids := func(args ...string) string {
		t.Helper()
		out, errs, code := runBerth(t, append([]string{"audit", "--file", path, "-o", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("berth audit %v: exit %d %s", args, code, errs)
		}
		var recs []audit.Record
		if err := json.Unmarshal([]byte(out), &recs); err != nil {
			t.Fatalf("%q: %v", out, err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.ID)
			if r.ID == "a2" && (r.ExitCode == nil || *r.ExitCode != 7 || r.What != "exit 7") {
				t.Errorf("a2 not merged: %+v", r)
			}
		}
		return strings.Join(got, ",")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "a1,b1,a2,a3"},
		{[]string{"--tenant", "alice"}, "a1,a2,a3"},
		{[]string{"--tenant", "*"}, "a1,b1,a2,a3"},
		{[]string{"--tenant", "alice", "--sandbox", "aaaa"}, "a1,a2"},
		{[]string{"--since", "1h"}, "b1,a2,a3"},
		{[]string{"--limit", "2"}, "a2,a3"},
		{[]string{"--tenant", "nobody"}, ""},
	} {
		if got := ids(tc.args...); got != tc.want {
			t.Errorf("audit %v: %s, want %s", tc.args, got, tc.want)
		}
	}
	out, _, code := runBerth(t, "audit", "--file", path, "--tenant", "bob")
	if code != 0 || !strings.Contains(out, "rm-root") || !strings.Contains(out, "denied") || strings.Contains(out, "alice") {
		t.Errorf("table: exit %d\n%s", code, out)
	}
	// Mistakes are named, and nothing is read.
	for _, tc := range []struct {
		args []string
		want string
	}{
		// Without --local or --file, --tenant goes to the server (none answers here).
		{[]string{"audit", "--tenant", "alice", "--host", "http://127.0.0.1:1"}, "/api/v1/audit?tenant=alice"},
		{[]string{"audit", "--file", filepath.Join(t.TempDir(), "missing.jsonl")}, "missing.jsonl"},
		{[]string{"audit", "--file", path, "--since", "yesterday"}, `--since "yesterday"`},
		{[]string{"audit", "--file", path, "--limit", "-1"}, "--limit -1"},
		{[]string{"audit", "--file", path, "--local"}, "local"},
	} {
		_, errs, code := runBerth(t, tc.args...)
		if code == 0 || !strings.Contains(errs, tc.want) {
			t.Errorf("berth %v: exit %d, stderr %q; want an error naming %s", tc.args, code, errs, tc.want)
		}
	}
}
