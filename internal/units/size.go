// Package units parses the sizes users write, as docker-py and the Docker
// CLI accept them.
package units

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// maxSizeLen bounds the text ParseSize reads, so a hostile value costs little.
const maxSizeLen = 40

// ParseSize parses a byte size: a non-negative number of bytes ("1024"), or
// a number with a unit b, k, m, g or t, case-insensitive, optionally
// followed by "b" or "ib" ("512m", "4G", "1.5g", "100kb", "2GiB"). Units are
// powers of 1024. A fractional result is truncated to whole bytes. No
// spaces are allowed.
func ParseSize(s string) (int64, error) {
	n, err := Parse(s)
	if err != nil {
		if len(s) > maxSizeLen {
			s = s[:maxSizeLen] + "..."
		}
		return 0, fmt.Errorf("invalid size %s: %w", strconv.Quote(s), err)
	}
	return n, nil
}

// Parse is ParseSize without the "invalid size" prefix on its errors, for
// callers that name the value themselves.
func Parse(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("empty")
	}
	if len(s) > maxSizeLen {
		return 0, fmt.Errorf("too long")
	}
	i := 0
	for i < len(s) && (isDigit(s[i]) || s[i] == '.') {
		i++
	}
	num, unit := s[:i], strings.ToLower(s[i:])
	if num == "" || strings.Count(num, ".") > 1 || num == "." ||
		strings.HasPrefix(num, ".") || strings.HasSuffix(num, ".") {
		return 0, fmt.Errorf("expected a number of bytes or a number with a unit, e.g. \"512m\" or \"4g\"")
	}
	mult, ok := sizeUnit(unit)
	if !ok {
		return 0, fmt.Errorf("unknown unit %q: use b, k, m, g or t (powers of 1024)", s[i:])
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return 0, fmt.Errorf("invalid number %q", num)
	}
	r.Mul(r, new(big.Rat).SetInt64(mult))
	q := new(big.Int).Quo(r.Num(), r.Denom())
	if !q.IsInt64() {
		return 0, fmt.Errorf("too large")
	}
	return q.Int64(), nil
}

// sizeUnit returns the multiplier of a lower-case unit suffix.
func sizeUnit(u string) (int64, bool) {
	if u == "" || u == "b" {
		return 1, true
	}
	base := strings.TrimSuffix(u, "b")
	if strings.HasSuffix(u, "ib") {
		base = strings.TrimSuffix(u, "ib")
	}
	switch base {
	case "k":
		return 1 << 10, true
	case "m":
		return 1 << 20, true
	case "g":
		return 1 << 30, true
	case "t":
		return 1 << 40, true
	}
	return 0, false
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
