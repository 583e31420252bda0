package security

// state is what the analyzer knows about the shell at a point of the
// command line: variables assigned from literals, and the working
// directory after a literal cd. Forking is O(1): a child shares its
// parent's bindings and records its own.
type state struct {
	parent *state
	vars   map[string]binding
	cwd    string // "" when unknown
}

type binding struct {
	value string
	known bool
}

func newState() *state { return &state{} }

// fork returns a state for a subshell, pipeline stage or child process.
func (st *state) fork() *state { return &state{parent: st, cwd: st.cwd} }

// set binds name to a known value.
func (st *state) set(name, value string) {
	if st.vars == nil {
		st.vars = make(map[string]binding, 4)
	}
	st.vars[name] = binding{value: value, known: true}
}

// forget marks name as holding an unknown value.
func (st *state) forget(name string) {
	if st.vars == nil {
		st.vars = make(map[string]binding, 4)
	}
	st.vars[name] = binding{}
}

// lookup returns the value of name and whether it is known. HOME is "~"
// and PWD is the working directory unless assigned.
func (st *state) lookup(name string) (string, bool) {
	for s := st; s != nil; s = s.parent {
		if b, ok := s.vars[name]; ok {
			return b.value, b.known
		}
	}
	switch name {
	case "HOME":
		return "~", true
	case "PWD":
		return st.cwd, st.cwd != ""
	}
	return "", false
}

// setPositional binds $0, $1... and $@ / $* for sh -c 'script' arg0 args.
func (st *state) setPositional(args []string) {
	for i, a := range args {
		if i > 9 {
			break
		}
		st.set(string(rune('0'+i)), a)
	}
	rest := ""
	if len(args) > 1 {
		for i, a := range args[1:] {
			if i > 0 {
				rest += " "
			}
			rest += a
		}
	}
	st.set("@", rest)
	st.set("*", rest)
	for i := len(args); i <= 9; i++ {
		st.set(string(rune('0'+i)), "")
	}
}

// chdir applies cd DIR to the working directory.
func (st *state) chdir(dir string) {
	switch {
	case dir == "" || dir == "-" || containsHole(dir):
		st.cwd = ""
		return
	}
	s, ok := resolvePath(dir, st.cwd)
	if !ok || s.root == "." {
		st.cwd = ""
		return
	}
	st.cwd = s.String()
}
