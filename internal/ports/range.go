package ports

import (
	"fmt"
	"strconv"
	"strings"
)

// Range is an inclusive range of TCP ports.
type Range struct{ Min, Max int }

// ParseRange parses "MIN-MAX", e.g. "30000-39999". Both ends must be in
// 1..65535 and Min <= Max; a single port is written "31000-31000".
func ParseRange(s string) (Range, error) {
	loStr, hiStr, ok := strings.Cut(strings.TrimSpace(s), "-")
	if !ok {
		return Range{}, fmt.Errorf("ports: parse range %q: want MIN-MAX, e.g. 30000-39999", s)
	}
	lo, err := parsePort(loStr)
	if err != nil {
		return Range{}, fmt.Errorf("ports: parse range %q: min: %w", s, err)
	}
	hi, err := parsePort(hiStr)
	if err != nil {
		return Range{}, fmt.Errorf("ports: parse range %q: max: %w", s, err)
	}
	r := Range{Min: lo, Max: hi}
	if err := r.validate(); err != nil {
		return Range{}, fmt.Errorf("ports: parse range %q: %w", s, err)
	}
	return r, nil
}

// parsePort accepts 1-5 decimal digits (no sign, no spaces inside) in 1..65535.
func parsePort(s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 5 {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, fmt.Errorf("%q is not a port number", s)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a port number", s)
	}
	if n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %d out of 1..65535", n)
	}
	return n, nil
}

// String formats r as ParseRange reads it.
func (r Range) String() string { return strconv.Itoa(r.Min) + "-" + strconv.Itoa(r.Max) }

func (r Range) validate() error {
	switch {
	case r.Min < 1 || r.Max > 65535:
		return fmt.Errorf("range %s outside 1..65535", r)
	case r.Min > r.Max:
		return fmt.Errorf("range %s has min > max", r)
	}
	return nil
}

func (r Range) size() int { return r.Max - r.Min + 1 }

func (r Range) contains(p int) bool { return p >= r.Min && p <= r.Max }

// Ranges are the host port ranges of one sandbox's published ports.
type Ranges struct{ Agent, VSCode, App1, App2 Range }

// DefaultRanges returns OpenHands' V0 ranges. On Windows, and on WSL2
// (kernelRelease ending in "microsoft-standard-WSL2", as uname -r prints it
// there), every range stays below 49152, where Windows' ephemeral and
// Hyper-V-reserved ports begin.
func DefaultRanges(goos, kernelRelease string) Ranges {
	if goos == "windows" || strings.HasSuffix(kernelRelease, "microsoft-standard-WSL2") {
		return Ranges{
			Agent:  Range{30000, 34999},
			VSCode: Range{35000, 39999},
			App1:   Range{40000, 44999},
			App2:   Range{45000, 49151},
		}
	}
	return Ranges{
		Agent:  Range{30000, 39999},
		VSCode: Range{40000, 49999},
		App1:   Range{50000, 54999},
		App2:   Range{55000, 59999},
	}
}
