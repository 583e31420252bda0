package agent

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Identity is the account commands run as.
type Identity struct {
	UID   int
	GID   int
	Name  string
	Home  string
	Shell string
}

// UserSetup makes sure an account with the uid exists and returns it. Run
// calls it once before serving. Tests inject one that returns the current
// user, so they never touch /etc.
type UserSetup func(ctx context.Context, uid int) (Identity, error)

// Accounts creates the sandbox user by appending to the passwd and group
// files, so it needs no useradd and works on busybox images. The zero value
// uses /etc/passwd, /etc/group, /home and the name "berth".
type Accounts struct {
	PasswdPath string // default /etc/passwd
	GroupPath  string // default /etc/group
	HomeBase   string // default /home
	Name       string // default berth
	// Shells are tried in order for a new account; the first that exists
	// wins. Default /bin/bash, /bin/sh.
	Shells []string
}

func (a Accounts) withDefaults() Accounts {
	if a.PasswdPath == "" {
		a.PasswdPath = "/etc/passwd"
	}
	if a.GroupPath == "" {
		a.GroupPath = "/etc/group"
	}
	if a.HomeBase == "" {
		a.HomeBase = "/home"
	}
	if a.Name == "" {
		a.Name = "berth"
	}
	if len(a.Shells) == 0 {
		a.Shells = []string{"/bin/bash", "/bin/sh"}
	}
	return a
}

// Ensure returns the account with the uid, creating it (with a group of the
// same id and a home directory owned by it) when no passwd entry has that
// uid. An existing entry is used as it is.
func (a Accounts) Ensure(_ context.Context, uid int) (Identity, error) {
	a = a.withDefaults()
	if uid < 0 {
		return Identity{}, fmt.Errorf("ensure user: uid %d is negative", uid)
	}
	users, err := readAccountFile(a.PasswdPath)
	if err != nil {
		return Identity{}, fmt.Errorf("ensure user %d: %w", uid, err)
	}
	pw := parsePasswd(users)
	for _, e := range pw {
		if e.UID == uid {
			return e.identity(), nil
		}
	}
	if uid == 0 {
		// No root entry (a scratch image): run as root all the same.
		return Identity{UID: 0, GID: 0, Name: "root", Home: "/root", Shell: firstExisting(a.Shells)}, nil
	}

	groups, err := readAccountFile(a.GroupPath)
	if err != nil {
		return Identity{}, fmt.Errorf("ensure user %d: %w", uid, err)
	}
	gr := parseGroup(groups)
	name := a.Name
	if nameTaken(name, pw, gr) {
		name = a.Name + "-" + strconv.Itoa(uid)
	}
	id := Identity{
		UID:   uid,
		GID:   uid,
		Name:  name,
		Home:  filepath.Join(a.HomeBase, name),
		Shell: firstExisting(a.Shells),
	}
	// On a read-only root filesystem the account cannot be written: the
	// user then runs by number, with its home on the writable /home.
	readOnly := func(err error) bool { return errors.Is(err, syscall.EROFS) }
	if !groupExists(uid, gr) {
		line := fmt.Sprintf("%s:x:%d:\n", name, id.GID)
		if err := appendLine(a.GroupPath, groups, line); err != nil && !readOnly(err) {
			return Identity{}, fmt.Errorf("ensure user %d: add group: %w", uid, err)
		}
	}
	line := fmt.Sprintf("%s:x:%d:%d:%s:%s:%s\n", name, id.UID, id.GID, name, id.Home, id.Shell)
	if err := appendLine(a.PasswdPath, users, line); err != nil && !readOnly(err) {
		return Identity{}, fmt.Errorf("ensure user %d: add user: %w", uid, err)
	}
	if err := os.MkdirAll(id.Home, 0o755); err != nil {
		return Identity{}, fmt.Errorf("ensure user %d: create home: %w", uid, err)
	}
	if err := os.Chown(id.Home, id.UID, id.GID); err != nil {
		return Identity{}, fmt.Errorf("ensure user %d: chown home: %w", uid, err)
	}
	return id, nil
}

// passwdEntry is one parsed line of /etc/passwd.
type passwdEntry struct {
	Name  string
	UID   int
	GID   int
	Home  string
	Shell string
}

func (e passwdEntry) identity() Identity {
	return Identity{UID: e.UID, GID: e.GID, Name: e.Name, Home: e.Home, Shell: e.Shell}
}

// groupEntry is one parsed line of /etc/group.
type groupEntry struct {
	Name string
	GID  int
}

// parsePasswd reads name:pw:uid:gid:gecos:home:shell lines, skipping
// comments, blank and malformed lines.
func parsePasswd(data []byte) []passwdEntry {
	var out []passwdEntry
	for _, f := range accountLines(data) {
		if len(f) < 7 {
			continue
		}
		uid, err1 := strconv.Atoi(f[2])
		gid, err2 := strconv.Atoi(f[3])
		if err1 != nil || err2 != nil || f[0] == "" {
			continue
		}
		out = append(out, passwdEntry{Name: f[0], UID: uid, GID: gid, Home: f[5], Shell: f[6]})
	}
	return out
}

// parseGroup reads name:pw:gid:members lines, skipping malformed ones.
func parseGroup(data []byte) []groupEntry {
	var out []groupEntry
	for _, f := range accountLines(data) {
		if len(f) < 3 {
			continue
		}
		gid, err := strconv.Atoi(f[2])
		if err != nil || f[0] == "" {
			continue
		}
		out = append(out, groupEntry{Name: f[0], GID: gid})
	}
	return out
}

func accountLines(data []byte) [][]string {
	var out [][]string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out = append(out, strings.Split(line, ":"))
	}
	return out
}

func nameTaken(name string, pw []passwdEntry, gr []groupEntry) bool {
	for _, e := range pw {
		if e.Name == name {
			return true
		}
	}
	for _, g := range gr {
		if g.Name == name {
			return true
		}
	}
	return false
}

func groupExists(gid int, gr []groupEntry) bool {
	for _, g := range gr {
		if g.GID == gid {
			return true
		}
	}
	return false
}

// readAccountFile reads a passwd or group file; a missing one is empty.
func readAccountFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	return data, nil
}

// appendLine appends line to the file whose current content is old, adding
// the newline old lacks at its end.
func appendLine(path string, old []byte, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	if len(old) > 0 && old[len(old)-1] != '\n' {
		line = "\n" + line
	}
	if _, err := io.WriteString(f, line); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", path, err)
	}
	return nil
}

// firstExisting returns the first path that exists, or the last one.
func firstExisting(paths []string) string {
	for _, p := range paths {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return paths[len(paths)-1]
}
