// Package security judges the risk of the shell commands, file operations
// and environment variables that an AI agent asks a berth sandbox to run or
// set.
//
// The analyzer parses shell with mvdan.cc/sh/v3/syntax (bash dialect) and
// walks the syntax tree, so a dangerous command is found wherever it sits:
// behind pipes, lists, subshells, command substitutions, wrappers such as
// sudo, env, timeout, xargs or find -exec, inside sh -c and eval strings, or
// behind variables assigned earlier in the same command line. Rules are data:
// a built-in set (DefaultRules) plus user rules loaded from TOML (LoadRules).
// Env judges an environment: variables that load code (LD_PRELOAD,
// BASH_ENV) by rule, and the code that PROMPT_COMMAND, exported functions
// and prompts run as commands.
//
// The analysis is static and advisory: it sees the command text, not what a
// script written to disk or a downloaded program will later do. See
// docs/security-rules.md for the schema, the built-in rules and the limits.
package security

import (
	"fmt"
	"strings"
)

// Level is the risk of a command: LOW, MEDIUM or HIGH.
type Level int

// The risk levels, in increasing order. The zero value is LevelLow.
const (
	LevelLow Level = iota
	LevelMedium
	LevelHigh
)

// String returns "LOW", "MEDIUM" or "HIGH".
func (l Level) String() string {
	switch l {
	case LevelLow:
		return "LOW"
	case LevelMedium:
		return "MEDIUM"
	case LevelHigh:
		return "HIGH"
	}
	return fmt.Sprintf("Level(%d)", int(l))
}

// valid reports whether l is one of the three defined levels.
func (l Level) valid() bool { return l >= LevelLow && l <= LevelHigh }

// ParseLevel parses "low", "medium" or "high" in any case.
func ParseLevel(s string) (Level, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "LOW":
		return LevelLow, nil
	case "MEDIUM":
		return LevelMedium, nil
	case "HIGH":
		return LevelHigh, nil
	}
	return LevelLow, fmt.Errorf("unknown level %q (want LOW, MEDIUM or HIGH)", s)
}

// MarshalText encodes the level as its name.
func (l Level) MarshalText() ([]byte, error) {
	if !l.valid() {
		return nil, fmt.Errorf("invalid level %d", int(l))
	}
	return []byte(l.String()), nil
}

// UnmarshalText decodes a level name (case-insensitive).
func (l *Level) UnmarshalText(b []byte) error {
	v, err := ParseLevel(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}
