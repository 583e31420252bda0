package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berth-dev/berth/internal/audit"
	"github.com/berth-dev/berth/internal/dockertest"
)

// Under audit, a HIGH command runs, and the trail says who ran what, its
// risk, the decision and how it ended.
func TestSecurityAuditPolicyEndToEnd(t *testing.T) {
	c := newCLI(t)
	c.addConfig("[security]\npolicy = \"audit\"\n")
	srv := startServer(t, c, buildBerth(t, t.TempDir()))
	t.Setenv("BERTH_HOST", "http://"+srv.addr)
	id := strings.TrimSpace(c.ok("create", "--label", dockertest.Label+"="+env.RunID))
	t.Cleanup(func() { c.run("--host", "", "rm", "-f", id) })

	// HIGH (it names chmod -R 777 /), harmless here: the user owns little.
	_, errs, code := c.run("exec", id, "--", "sh", "-c", "touch /tmp/ran; chmod -R 777 / 2>/dev/null; exit 4")
	if code != 4 {
		t.Fatalf("audited command: exit %d, %q; want it run, exit 4", code, errs)
	}
	if out := c.ok("exec", id, "--", "ls", "/tmp"); !strings.Contains(out, "ran") {
		t.Fatalf("the audited command did not run: /tmp holds %q", out)
	}
	var recs []audit.Record
	out := c.ok("audit", "--sandbox", id, "-o", "json")
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("%q: %v", out, err)
	}
	var high *audit.Record
	for i, r := range recs {
		if strings.Contains(r.What, "chmod -R 777 /") {
			high = &recs[i]
		}
	}
	if high == nil {
		t.Fatalf("no record of the HIGH command:\n%s", out)
	}
	if high.Decision != audit.Audited || high.Level != "HIGH" || high.Tenant != "local" || high.Sandbox != id ||
		high.Action != audit.ActionExec || high.ExitCode == nil || *high.ExitCode != 4 || high.DurationMS < 1 {
		t.Errorf("record %+v: want audited HIGH exec of local in %s, exit 4, a duration", *high, id)
	}
	if len(high.Rules) == 0 {
		t.Errorf("record %+v names no rule", *high)
	}
}
