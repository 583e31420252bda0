package agent

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/berth-dev/berth/internal/agentapi"
)

func TestParsePasswd(t *testing.T) {
	data := []byte(`root:x:0:0:root:/root:/bin/bash
# a comment

daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
broken line
bad:x:notanumber:1::/:/bin/sh
short:x:5:5
app:x:1000:100:App,,,:/home/app:/bin/zsh`)
	got := parsePasswd(data)
	want := []passwdEntry{
		{"root", 0, 0, "/root", "/bin/bash"},
		{"daemon", 1, 1, "/usr/sbin", "/usr/sbin/nologin"},
		{"app", 1000, 100, "/home/app", "/bin/zsh"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	groups := parseGroup([]byte("root:x:0:\nusers:x:100:a,b\nbad:x:y:\n"))
	if len(groups) != 2 || groups[1] != (groupEntry{"users", 100}) {
		t.Errorf("groups = %+v", groups)
	}
}

// testAccounts points Accounts at files in a temporary /etc.
func testAccounts(t *testing.T, passwd, group string) Accounts {
	t.Helper()
	dir := t.TempDir()
	a := Accounts{
		PasswdPath: filepath.Join(dir, "passwd"),
		GroupPath:  filepath.Join(dir, "group"),
		HomeBase:   filepath.Join(dir, "home"),
		Shells:     []string{"/nonexistent/bash", "/bin/sh"},
	}
	if err := os.WriteFile(a.PasswdPath, []byte(passwd), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(a.GroupPath, []byte(group), 0o644); err != nil {
		t.Fatal(err)
	}
	return a
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown)")
	}
}

func TestAccountsEnsureCreates(t *testing.T) {
	requireRoot(t)
	// The files lack a final newline: the new lines must not join them.
	a := testAccounts(t, "root:x:0:0:root:/root:/bin/sh", "root:x:0:")
	id, err := a.Ensure(t.Context(), 1234)
	if err != nil {
		t.Fatal(err)
	}
	want := Identity{UID: 1234, GID: 1234, Name: "berth", Home: filepath.Join(a.HomeBase, "berth"), Shell: "/bin/sh"}
	if id != want {
		t.Errorf("identity = %+v, want %+v", id, want)
	}
	passwd, _ := os.ReadFile(a.PasswdPath)
	group, _ := os.ReadFile(a.GroupPath)
	if got := string(passwd); got != "root:x:0:0:root:/root:/bin/sh\nberth:x:1234:1234:berth:"+want.Home+":/bin/sh\n" {
		t.Errorf("passwd = %q", got)
	}
	if got := string(group); got != "root:x:0:\nberth:x:1234:\n" {
		t.Errorf("group = %q", got)
	}
	st, err := os.Stat(want.Home)
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 1234 || sys.Gid != 1234 || !st.IsDir() {
		t.Errorf("home owned by %d:%d", sys.Uid, sys.Gid)
	}

	// A second run finds the account and adds nothing.
	again, err := a.Ensure(t.Context(), 1234)
	if err != nil || again != want {
		t.Errorf("second Ensure = %+v, %v", again, err)
	}
	passwd2, _ := os.ReadFile(a.PasswdPath)
	if string(passwd2) != string(passwd) {
		t.Errorf("second Ensure changed passwd: %q", passwd2)
	}
}

func TestAccountsEnsureExistingAndClashes(t *testing.T) {
	requireRoot(t)
	a := testAccounts(t,
		"root:x:0:0:root:/root:/bin/ash\nberth:x:2000:2000::/home/berth:/bin/sh\napp:x:1000:100::/srv/app:/bin/false\n",
		"root:x:0:\nberth:x:2000:\nstaff:x:3000:\n")
	// An existing uid is used as it is.
	id, err := a.Ensure(t.Context(), 1000)
	if err != nil || id != (Identity{1000, 100, "app", "/srv/app", "/bin/false"}) {
		t.Errorf("existing uid: %+v, %v", id, err)
	}
	root, err := a.Ensure(t.Context(), 0)
	if err != nil || root.UID != 0 || root.Name != "root" || root.Shell != "/bin/ash" {
		t.Errorf("root: %+v, %v", root, err)
	}
	// The name berth is taken and gid 3000 exists: a new name, no new group.
	id, err = a.Ensure(t.Context(), 3000)
	if err != nil || id.Name != "berth-3000" || id.GID != 3000 {
		t.Errorf("clash: %+v, %v", id, err)
	}
	group, _ := os.ReadFile(a.GroupPath)
	if strings.Count(string(group), ":3000:") != 1 {
		t.Errorf("group file = %q", group)
	}
}

func TestAccountsEnsureNoRootEntry(t *testing.T) {
	a := testAccounts(t, "", "")
	id, err := a.Ensure(t.Context(), 0)
	if err != nil || id.UID != 0 || id.Home != "/root" {
		t.Errorf("root on a scratch image: %+v, %v", id, err)
	}
	if _, err := a.Ensure(t.Context(), -1); err == nil {
		t.Error("negative uid accepted")
	}
}

// As root the agent runs commands as the sandbox user, with no
// supplementary groups, in a workdir it owns.
func TestExecRunsAsSandboxUser(t *testing.T) {
	requireRoot(t)
	t.Parallel()
	base, err := os.MkdirTemp("", "berth-agent-user")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	acc := Accounts{
		PasswdPath: filepath.Join(base, "passwd"),
		GroupPath:  filepath.Join(base, "group"),
		HomeBase:   filepath.Join(base, "home"),
	}
	workdir := filepath.Join(base, "workspace")
	a := newTestAgent(t, func(o *Options) {
		o.UserID = 4321
		o.Workdir = workdir
		o.SetupUser = acc.Ensure
	})
	r := a.exec(t, agentapi.ExecRequest{Command: `id -u; id -g; id -G; pwd; echo "$HOME $USER"; touch mine && stat -c %u mine`})
	want := "4321\n4321\n4321\n" + workdir + "\n" + filepath.Join(base, "home", "berth") + " berth\n4321\n"
	if got := string(r.stdout); got != want {
		t.Errorf("stdout = %q, want %q (stderr %q)", got, want, r.stderr)
	}
	st, err := os.Stat(workdir)
	if err != nil {
		t.Fatal(err)
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 4321 {
		t.Errorf("workdir owned by %d", sys.Uid)
	}
}

func TestNewServerRefusesOtherUserWhenNotRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("runs as root")
	}
	_, err := NewServer(t.Context(), Options{
		Key: "k", Workdir: t.TempDir(), UserID: os.Getuid() + 1,
		SetupUser: func(_ context.Context, uid int) (Identity, error) {
			return Identity{UID: uid, GID: uid, Name: "x"}, nil
		},
	})
	if err == nil || !strings.Contains(err.Error(), "not root") {
		t.Errorf("err = %v", err)
	}
}
