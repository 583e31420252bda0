package server

import "sync"

// maxSessionCwds bounds the session directories kept; past it, it starts
// over (a session then is judged as if its directory were unknown until
// its next command ends).
const maxSessionCwds = 16384

// sessionCwds keeps where each shell session's last command left it (the
// cwd of its exit event), so that the session's next command is judged
// where it will run: `cd /` then `rm -rf *` is rm -rf /*.
type sessionCwds struct {
	mu sync.Mutex
	m  map[string]string
}

func sessionKey(sandboxID, session string) string { return sandboxID + "\x00" + session }

// get is session's directory in sandbox sandboxID, "" when not known.
func (c *sessionCwds) get(sandboxID, session string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[sessionKey(sandboxID, session)]
}

// set records session's directory after a command ended; "" forgets it
// (the shell exited: the next one starts in the workdir, which the agent
// knows and berth does not).
func (c *sessionCwds) set(sandboxID, session, cwd string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := sessionKey(sandboxID, session)
	if cwd == "" {
		delete(c.m, k)
		return
	}
	if c.m == nil || len(c.m) >= maxSessionCwds {
		c.m = map[string]string{}
	}
	c.m[k] = cwd
}

// seen takes a session's exit event: its cwd, or, if it ended the shell,
// no cwd at all.
func (c *sessionCwds) seen(sandboxID, session string, shellExited bool, cwd string) {
	if shellExited {
		cwd = ""
	}
	c.set(sandboxID, session, cwd)
}
