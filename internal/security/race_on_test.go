//go:build race

package security

// The race detector slows code down 5-20 times; time bounds scale with it.
const timeScale = 20
