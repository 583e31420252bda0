//go:build !race

package security

const timeScale = 1
