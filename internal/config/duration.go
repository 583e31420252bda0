package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration that reads from TOML and the environment as
// whole or decimal seconds (120, 1.5, "120") or a Go duration ("2m", "90s"),
// and writes as a Go duration ("2m0s").
type Duration struct{ time.Duration }

// MarshalText writes the duration as Go formats it, e.g. "2m0s".
func (d Duration) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText reads seconds ("120", "1.5") or a Go duration ("2m").
func (d *Duration) UnmarshalText(text []byte) error {
	s := strings.TrimSpace(string(text))
	if isDecimal(s) {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("invalid duration %s: %w", show(s), err)
		}
		return d.setSeconds(f)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("invalid duration %s: want seconds (120) or a duration (\"2m\", \"90s\")", show(s))
	}
	d.Duration = v
	return nil
}

// UnmarshalTOML reads a TOML integer or float as seconds, or a string as
// UnmarshalText does.
func (d *Duration) UnmarshalTOML(v any) error {
	switch v := v.(type) {
	case int64:
		return d.setSeconds(float64(v))
	case float64:
		return d.setSeconds(v)
	case string:
		return d.UnmarshalText([]byte(v))
	}
	return fmt.Errorf("invalid duration %s: want seconds (120) or a duration (\"2m\", \"90s\")", show(v))
}

func (d *Duration) setSeconds(f float64) error {
	ns := f * float64(time.Second)
	if math.IsNaN(ns) || ns >= math.MaxInt64 || ns <= math.MinInt64 {
		return fmt.Errorf("duration of %v seconds is out of range", f)
	}
	d.Duration = time.Duration(ns)
	return nil
}

// isDecimal reports whether s is a plain decimal number: [+-]digits[.digits].
func isDecimal(s string) bool {
	if s != "" && (s[0] == '+' || s[0] == '-') {
		s = s[1:]
	}
	intPart, frac, dot := strings.Cut(s, ".")
	return allDigits(intPart) && (!dot || allDigits(frac))
}

func allDigits(s string) bool {
	for i := range len(s) {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}
