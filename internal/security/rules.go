package security

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// A Rule says which commands are risky, how much, and why. Rules are data:
// DefaultRules is the built-in set and LoadRules reads more from TOML.
//
// A rule matches a simple command (after quoting, variables, wrappers and
// sh -c have been seen through) when every matcher field that is set
// matches; within a field, any one of its patterns is enough. At least one
// matcher field must be set. See docs/security-rules.md.
type Rule struct {
	ID      string `toml:"id" json:"id"`
	Level   Level  `toml:"level" json:"level"`
	Message string `toml:"message" json:"message"`

	// Command: program basenames, shell globs allowed ("mkfs*"). /bin/rm,
	// \rm, 'rm' and "rm" all have the basename rm.
	Command []string `toml:"command" json:"command,omitempty"`
	// Subcommand: globs for the first operand ("push" in git -C d push).
	Subcommand []string `toml:"subcommand" json:"subcommand,omitempty"`
	// Flags: option names, globs allowed. "-rf" counts as -rf, -r and -f;
	// "--output=x" counts as --output.
	Flags []string `toml:"flags" json:"flags,omitempty"`
	// Args: globs matched against each operand (a word that is not an
	// option), where `*` also matches "/".
	Args []string `toml:"args" json:"args,omitempty"`
	// Paths: path globs matched against the operands read as paths
	// (resolved against a directory set by cd earlier in the line), the
	// values of key=value and @file words, and input redirections.
	// "**" spans directories; "~" is the home directory (also /root and
	// /home/USER); `\*` matches only a literal `*` typed in the command.
	Paths []string `toml:"paths" json:"paths,omitempty"`
	// Writes: path globs matched against the files the command writes:
	// output redirections, tee, cp/mv/install/ln/rsync destinations, mv
	// sources, sed -i/perl -i files, dd of=, curl -o, wget -O, truncate,
	// shred and rm operands, and File writes, moves and removals.
	Writes []string `toml:"writes" json:"writes,omitempty"`
	// PipeTo: basename globs of the programs that consume this command's
	// output as a pipe or as a $( ) / <( ) argument (curl ... | sh).
	PipeTo []string `toml:"pipe_to" json:"pipe_to,omitempty"`
	// Shape: a structural pattern; the only one is "fork-bomb" (a function
	// that runs itself in a pipe or in the background).
	Shape string `toml:"shape" json:"shape,omitempty"`

	// Env makes the rule an environment rule, judged by Analyzer.Env
	// rather than against commands: globs matched against the name of
	// each variable set ("LD_PRELOAD", "BASH_FUNC_*"). It cannot be
	// combined with the command matchers above.
	Env []string `toml:"env" json:"env,omitempty"`
	// Value (only with Env): globs of which one must match the variable's
	// value, where `*` matches anything ("*$(*").
	Value []string `toml:"value" json:"value,omitempty"`
}

// Shapes that a rule may name.
const shapeForkBomb = "fork-bomb"

// Ids that the analyzer itself reports; a rule may not use them.
const (
	idUnparsable = "unparsable"
	idTooLong    = "too-long"
	idTooDeep    = "too-deep"
	idTooComplex = "too-complex"
	idTermEdit   = "terminal-edit"
)

func reservedID(id string) bool {
	switch id {
	case idUnparsable, idTooLong, idTooDeep, idTooComplex, idTermEdit:
		return true
	}
	return false
}

// compiled is a validated rule with its path patterns compiled.
type compiled struct {
	Rule
	paths  []pathPattern
	writes []pathPattern
}

// ruleError names the rule (by id, or by position when it has none) and
// the field that is wrong.
func ruleError(i int, id, field, format string, args ...any) error {
	who := fmt.Sprintf("rule %q", id)
	if id == "" {
		who = fmt.Sprintf("rule #%d", i+1)
	}
	if field != "" {
		who += fmt.Sprintf(": field %q", field)
	}
	return fmt.Errorf("security: %s: %s", who, fmt.Sprintf(format, args...))
}

// compileRule validates r (the i-th rule) and compiles its patterns.
func compileRule(i int, r Rule) (*compiled, error) {
	if r.ID == "" {
		return nil, ruleError(i, "", "id", "missing")
	}
	if strings.ContainsFunc(r.ID, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.')
	}) {
		return nil, ruleError(i, r.ID, "id", "use only letters, digits, '-', '_' and '.'")
	}
	if reservedID(r.ID) {
		return nil, ruleError(i, r.ID, "id", "reserved for the analyzer's own findings")
	}
	if !r.Level.valid() {
		return nil, ruleError(i, r.ID, "level", "unknown level %d (want LOW, MEDIUM or HIGH)", int(r.Level))
	}
	if strings.TrimSpace(r.Message) == "" {
		return nil, ruleError(i, r.ID, "message", "missing")
	}
	cmdMatchers := len(r.Command)+len(r.Subcommand)+len(r.Flags)+len(r.Args)+len(r.Paths)+len(r.Writes)+len(r.PipeTo) > 0 || r.Shape != ""
	switch {
	case len(r.Env) > 0 && cmdMatchers:
		return nil, ruleError(i, r.ID, "env", "an environment rule matches variables, not commands: "+
			"leave out command, subcommand, flags, args, paths, writes, pipe_to and shape (make two rules)")
	case len(r.Value) > 0 && len(r.Env) == 0:
		return nil, ruleError(i, r.ID, "value", "only with env (the names of the variables whose value it matches)")
	case !cmdMatchers && len(r.Env) == 0:
		return nil, ruleError(i, r.ID, "", "no matcher: set at least one of command, subcommand, flags, args, paths, writes, pipe_to, shape or env")
	}
	globs := []struct {
		field string
		list  []string
	}{{"command", r.Command}, {"subcommand", r.Subcommand}, {"flags", r.Flags}, {"args", r.Args}, {"pipe_to", r.PipeTo},
		{"env", r.Env}, {"value", r.Value}}
	for _, g := range globs {
		for _, p := range g.list {
			if err := checkGlob(p); err != nil {
				return nil, ruleError(i, r.ID, g.field, "%v", err)
			}
			if (g.field == "command" || g.field == "pipe_to") && strings.Contains(p, "/") {
				return nil, ruleError(i, r.ID, g.field, "%q: give a program's basename, without '/'", p)
			}
			if g.field == "flags" && !strings.HasPrefix(p, "-") && !strings.HasPrefix(p, "+") {
				return nil, ruleError(i, r.ID, g.field, "%q: a flag starts with '-' or '+'", p)
			}
			if g.field == "env" && strings.ContainsAny(p, "=\x00") {
				return nil, ruleError(i, r.ID, g.field, "%q: give a variable's name, without '='", p)
			}
		}
	}
	if r.Shape != "" && r.Shape != shapeForkBomb {
		return nil, ruleError(i, r.ID, "shape", "unknown shape %q (known: %q)", r.Shape, shapeForkBomb)
	}
	c := &compiled{Rule: r}
	var err error
	if c.paths, err = compilePaths(r.Paths); err != nil {
		return nil, ruleError(i, r.ID, "paths", "%v", err)
	}
	if c.writes, err = compilePaths(r.Writes); err != nil {
		return nil, ruleError(i, r.ID, "writes", "%v", err)
	}
	return c, nil
}

func compilePaths(list []string) ([]pathPattern, error) {
	out := make([]pathPattern, 0, len(list))
	for _, p := range list {
		pp, err := compilePath(p)
		if err != nil {
			return nil, err
		}
		out = append(out, pp)
	}
	return out, nil
}

// MergeRules returns base with each rule of extra appended, or put in the
// place of the base rule with the same id (so a user rule can change a
// built-in rule's level or message, or narrow it).
func MergeRules(base, extra []Rule) []Rule {
	out := append([]Rule(nil), base...)
	at := make(map[string]int, len(out))
	for i, r := range out {
		at[r.ID] = i
	}
	for _, r := range extra {
		if i, ok := at[r.ID]; ok {
			out[i] = r
			continue
		}
		at[r.ID] = len(out)
		out = append(out, r)
	}
	return out
}

// ruleFields are the keys a [[rule]] table may have.
const ruleFields = "id, level, message, command, subcommand, flags, args, paths, writes, pipe_to, shape, env, value"

// LoadRules reads rules from TOML, one [[rule]] table each:
//
//	[[rule]]
//	id = "terraform-destroy"
//	level = "HIGH"
//	message = "Destroys the infrastructure that terraform manages."
//	command = ["terraform", "tofu"]
//	subcommand = ["destroy"]
//
// List fields also accept a single string. The rules are validated as New
// does; errors name the rule and the field.
func LoadRules(data []byte) ([]Rule, error) {
	var doc map[string]any
	if err := toml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("security: rules: %w", err)
	}
	for k := range doc {
		if k != "rule" {
			return nil, fmt.Errorf("security: rules: unknown key %q (rules are [[rule]] tables)", k)
		}
	}
	raw, ok := doc["rule"]
	if !ok {
		return nil, nil
	}
	tables, ok := raw.([]map[string]any)
	if !ok {
		return nil, errors.New("security: rules: \"rule\" must be an array of tables ([[rule]])")
	}
	rules := make([]Rule, 0, len(tables))
	for i, t := range tables {
		r, err := decodeRule(i, t)
		if err != nil {
			return nil, err
		}
		if _, err := compileRule(i, r); err != nil {
			return nil, err
		}
		rules = append(rules, r)
	}
	if err := checkUnique(rules); err != nil {
		return nil, err
	}
	return rules, nil
}

func decodeRule(i int, t map[string]any) (Rule, error) {
	var r Rule
	id, _ := t["id"].(string)
	keys := make([]string, 0, len(t))
	for k := range t {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		v := t[k]
		var err error
		switch k {
		case "id":
			r.ID, err = tomlString(v)
		case "message":
			r.Message, err = tomlString(v)
		case "shape":
			r.Shape, err = tomlString(v)
		case "level":
			var s string
			if s, err = tomlString(v); err == nil {
				r.Level, err = ParseLevel(s)
			}
		case "command":
			r.Command, err = tomlList(v)
		case "subcommand":
			r.Subcommand, err = tomlList(v)
		case "flags":
			r.Flags, err = tomlList(v)
		case "args":
			r.Args, err = tomlList(v)
		case "paths":
			r.Paths, err = tomlList(v)
		case "writes":
			r.Writes, err = tomlList(v)
		case "pipe_to":
			r.PipeTo, err = tomlList(v)
		case "env":
			r.Env, err = tomlList(v)
		case "value":
			r.Value, err = tomlList(v)
		default:
			return r, ruleError(i, id, k, "unknown field (known: %s)", ruleFields)
		}
		if err != nil {
			return r, ruleError(i, id, k, "%v", err)
		}
	}
	if _, ok := t["level"]; !ok {
		return r, ruleError(i, id, "level", "missing")
	}
	return r, nil
}

func tomlString(v any) (string, error) {
	s, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("want a string, got %T", v)
	}
	return s, nil
}

func tomlList(v any) ([]string, error) {
	switch v := v.(type) {
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("want an array of strings, found %T", e)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("want an array of strings, got %T", v)
}

func checkUnique(rules []Rule) error {
	seen := make(map[string]int, len(rules))
	for i, r := range rules {
		if j, ok := seen[r.ID]; ok {
			return ruleError(i, r.ID, "id", "duplicate id (also rule #%d)", j+1)
		}
		seen[r.ID] = i
	}
	return nil
}
