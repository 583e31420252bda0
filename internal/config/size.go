package config

import "github.com/berth-dev/berth/internal/units"

// ParseSize parses a byte size such as "512m" or "4G" (see units.ParseSize).
func ParseSize(s string) (int64, error) { return units.ParseSize(s) }
