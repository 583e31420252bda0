package security

import (
	"strings"
	"testing"
)

const userRules = `
[[rule]]
id = "terraform-destroy"
level = "HIGH"
message = "Destroys the infrastructure that terraform manages."
command = ["terraform", "tofu"]
subcommand = "destroy"

[[rule]]
id = "kubectl-delete-ns"
level = "medium"
message = "Deletes a Kubernetes namespace and everything in it."
command = ["kubectl"]
subcommand = ["delete"]
args = ["ns", "namespace", "namespace/*", "ns/*"]

[[rule]]
id = "write-app-config"
level = "MEDIUM"
message = "Changes the deployed app's configuration."
writes = ["/srv/app/config/**"]
`

func TestUserRules(t *testing.T) {
	user, err := LoadRules([]byte(userRules))
	if err != nil {
		t.Fatal(err)
	}
	if len(user) != 3 || user[0].Level != LevelHigh || user[1].Level != LevelMedium ||
		strings.Join(user[0].Subcommand, ",") != "destroy" {
		t.Fatalf("loaded %+v", user)
	}
	a, err := New(MergeRules(DefaultRules(), user))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []tableCase{
		{"terraform destroy -auto-approve", LevelHigh, "terraform-destroy"},
		{"cd infra && terraform -chdir=prod destroy", LevelHigh, "terraform-destroy"},
		{"sudo tofu destroy", LevelHigh, "terraform-destroy"},
		{"sh -c 'terraform destroy'", LevelHigh, "terraform-destroy"},
		{"terraform plan", LevelLow, ""},
		{"echo terraform destroy", LevelLow, ""},
		{"kubectl -n prod delete namespace prod", LevelMedium, "kubectl-delete-ns"},
		{"kubectl delete pod x", LevelLow, ""},
		{"echo '{}' > /srv/app/config/app.json", LevelMedium, "write-app-config"},
		{"rm -rf /", LevelHigh, "rm-root"}, // the built-in rules still apply
	} {
		as := a.Command(tc.cmd)
		if as.Level != tc.want || tc.rule != "" && !hasRule(as, tc.rule) {
			t.Errorf("%q: %v %+v, want %v %q", tc.cmd, as.Level, as.Findings, tc.want, tc.rule)
		}
	}
}

func TestMergeRulesOverrides(t *testing.T) {
	user := []Rule{{ID: "sudo", Level: LevelLow, Message: "sudo is fine here", Command: []string{"sudo"}}}
	merged := MergeRules(DefaultRules(), user)
	if len(merged) != len(DefaultRules()) {
		t.Fatalf("merge added a rule: %d vs %d", len(merged), len(DefaultRules()))
	}
	a, err := New(merged)
	if err != nil {
		t.Fatal(err)
	}
	if as := a.Command("sudo ls"); as.Level != LevelLow {
		t.Errorf("overridden sudo rule: %v %+v", as.Level, as.Findings)
	}
}

func TestLoadRulesErrors(t *testing.T) {
	for _, tc := range []struct {
		name, toml string
		want       []string // substrings of the error
	}{
		{"unknown field", `[[rule]]
id = "x"
level = "HIGH"
message = "m"
comand = ["rm"]`, []string{`rule "x"`, `field "comand"`, "unknown field"}},
		{"bad level", `[[rule]]
id = "x"
level = "severe"
message = "m"
command = ["rm"]`, []string{`rule "x"`, `field "level"`, "severe"}},
		{"missing level", `[[rule]]
id = "x"
message = "m"
command = ["rm"]`, []string{`rule "x"`, `field "level"`, "missing"}},
		{"missing message", `[[rule]]
id = "x"
level = "LOW"
command = ["rm"]`, []string{`rule "x"`, `field "message"`}},
		{"missing id", `[[rule]]
level = "LOW"
message = "m"
command = ["rm"]`, []string{"rule #1", `field "id"`}},
		{"no matcher", `[[rule]]
id = "empty"
level = "LOW"
message = "m"`, []string{`rule "empty"`, "no matcher"}},
		{"wrong type", `[[rule]]
id = "x"
level = "LOW"
message = "m"
command = [1, 2]`, []string{`rule "x"`, `field "command"`, "strings"}},
		{"relative path", `[[rule]]
id = "x"
level = "LOW"
message = "m"
paths = ["etc/passwd"]`, []string{`rule "x"`, `field "paths"`, "must start with"}},
		{"bad glob", `[[rule]]
id = "x"
level = "LOW"
message = "m"
writes = ["/etc/[a"]`, []string{`rule "x"`, `field "writes"`, "bad pattern"}},
		{"command with slash", `[[rule]]
id = "x"
level = "LOW"
message = "m"
command = ["/bin/rm"]`, []string{`rule "x"`, `field "command"`, "basename"}},
		{"flag without dash", `[[rule]]
id = "x"
level = "LOW"
message = "m"
command = ["rm"]
flags = ["rf"]`, []string{`rule "x"`, `field "flags"`}},
		{"unknown shape", `[[rule]]
id = "x"
level = "LOW"
message = "m"
shape = "spiral"`, []string{`rule "x"`, `field "shape"`, "spiral"}},
		{"duplicate", `[[rule]]
id = "x"
level = "LOW"
message = "m"
command = ["a"]
[[rule]]
id = "x"
level = "LOW"
message = "m"
command = ["b"]`, []string{`rule "x"`, "duplicate"}},
		{"reserved id", `[[rule]]
id = "unparsable"
level = "LOW"
message = "m"
command = ["a"]`, []string{`rule "unparsable"`, "reserved"}},
		{"not rules", `[rules]
id = "x"`, []string{`unknown key "rules"`}},
		{"bad toml", `[[rule]
id = `, []string{"security: rules"}},
	} {
		_, err := LoadRules([]byte(tc.toml))
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", tc.name, err, w)
			}
		}
	}
}

func TestNewErrors(t *testing.T) {
	ok := Rule{ID: "ok", Level: LevelLow, Message: "m", Command: []string{"x"}}
	for _, tc := range []struct {
		rules []Rule
		want  string
	}{
		{[]Rule{ok, ok}, `rule "ok": field "id": duplicate id`},
		{[]Rule{{ID: "lvl", Level: Level(9), Message: "m", Command: []string{"x"}}}, `rule "lvl": field "level"`},
		{[]Rule{{ID: "none", Level: LevelHigh, Message: "m"}}, `rule "none": no matcher`},
		{[]Rule{{ID: "p", Level: LevelHigh, Message: "m", Paths: []string{"x/y"}}}, `rule "p": field "paths"`},
		{[]Rule{{ID: "bad id", Level: LevelHigh, Message: "m", Command: []string{"x"}}}, `rule "bad id": field "id"`},
	} {
		_, err := New(tc.rules)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("New: error %v, want %q", err, tc.want)
		}
	}
	if _, err := New(DefaultRules()); err != nil {
		t.Errorf("default rules: %v", err)
	}
	if _, err := New(nil); err != nil {
		t.Errorf("no rules: %v", err)
	}
	if as := mustNew(t, nil).Command("rm -rf /"); as.Level != LevelLow {
		t.Errorf("no rules judged %v", as.Level)
	}
}

func mustNew(t *testing.T, rules []Rule) *Analyzer {
	t.Helper()
	a, err := New(rules)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestDefaultRulesAreFresh(t *testing.T) {
	r := DefaultRules()
	r[0].Command[0] = "changed"
	if DefaultRules()[0].Command[0] == "changed" {
		t.Error("DefaultRules shares its slices between calls")
	}
}
