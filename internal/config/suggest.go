package config

import (
	"slices"
	"strings"
)

// suggest returns the candidate closest to key, or "" when none is close:
// a small edit distance, or a candidate holding every word of a key of two
// words or more ("base_image" → "base_container_image").
func suggest(key string, candidates []string) string {
	best, bestDist := "", -1
	limit := max(2, len(key)/3)
	for _, c := range candidates {
		if d := editDistance(key, c); d <= limit && (bestDist < 0 || d < bestDist) {
			best, bestDist = c, d
		}
	}
	if best != "" {
		return best
	}
	words := strings.FieldsFunc(strings.ToLower(key), isSeparator)
	if len(words) < 2 { // one word ("extra") matches too loosely
		return ""
	}
	for _, c := range candidates {
		cw := strings.Split(c, "_")
		if !slices.ContainsFunc(words, func(w string) bool { return !slices.Contains(cw, w) }) {
			if d := editDistance(key, c); bestDist < 0 || d < bestDist {
				best, bestDist = c, d
			}
		}
	}
	return best
}

func isSeparator(r rune) bool { return r == '_' || r == '-' || r == '.' || r == ' ' }

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b))
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
