package config

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Error is one problem with one setting. Validate, Parse, Load and ApplyEnv
// return these joined with errors.Join; use errors.As to inspect one.
type Error struct {
	// Key names the setting: "sandbox.<key>" for a file value (or one set in
	// code), or the environment variable, e.g. "SANDBOX_TIMEOUT".
	Key string
	// Sub is the key inside a table value, e.g. "mem_limit" in
	// docker_runtime_kwargs or "ulimits[0].soft"; "" if none.
	Sub string
	// Value is the offending value as written (strings quoted); "" if none.
	Value string
	// Reason says what is wrong and what is expected.
	Reason string
	// Unknown is set when the key itself is not recognised; Reason then
	// holds the hint (a did-you-mean or the supported keys).
	Unknown bool
	// Err is the underlying cause, if any.
	Err error
}

func (e *Error) name() string {
	if e.Sub == "" {
		return e.Key
	}
	if strings.HasPrefix(e.Key, "sandbox.") {
		return e.Key + "." + e.Sub
	}
	return e.Key + ": " + e.Sub
}

func (e *Error) Error() string {
	if e.Unknown {
		key := e.name()
		prefix := ""
		if e.Sub != "" && !strings.HasPrefix(e.Key, "sandbox.") {
			prefix, key = e.Key+": ", e.Sub
		}
		msg := fmt.Sprintf("%sunknown key %q", prefix, key)
		if e.Reason != "" {
			msg += " (" + e.Reason + ")"
		}
		return msg
	}
	msg := e.name() + ": " + e.Reason
	if e.Value != "" {
		msg += ", got " + e.Value
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// problems collects errors for one setting before its key is known.
type problems []*Error

func (ps *problems) add(sub, value, reason string) {
	*ps = append(*ps, &Error{Sub: sub, Value: value, Reason: reason})
}

// errs gives each problem its key and returns them as a slice of errors.
func (ps problems) errs(key string) []error {
	out := make([]error, 0, len(ps))
	for _, p := range ps {
		p.Key = key
		out = append(out, p)
	}
	return out
}

// prefixed wraps every error with the name of its source (a file), so each
// line of the joined message says where it came from.
func prefixed(source string, errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	if source == "" {
		return errors.Join(errs...)
	}
	out := make([]error, len(errs))
	for i, err := range errs {
		out[i] = fmt.Errorf("%s: %w", source, err)
	}
	return errors.Join(out...)
}

// show formats a value for an error message: strings quoted, long values cut.
func show(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		s = "None"
	case string:
		s = strings.ToValidUTF8(v, "\uFFFD")
		s = fmt.Sprintf("%q", truncate(s))
		return s
	default:
		s = fmt.Sprintf("%v", v)
	}
	return truncate(s)
}

const maxShown = 100

func truncate(s string) string {
	if utf8.RuneCountInString(s) <= maxShown {
		return s
	}
	r := []rune(s)
	return string(r[:maxShown]) + "…"
}
