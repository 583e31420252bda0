package sandbox

import "errors"

// Sentinel errors. Backends wrap them with the operation and the sandbox
// reference, so callers test with errors.Is and people read the whole text.
var (
	ErrNotFound     = errors.New("no such sandbox")
	ErrAmbiguous    = errors.New("sandbox reference is ambiguous")
	ErrConflict     = errors.New("conflict")
	ErrNotRunning   = errors.New("sandbox is not running")
	ErrInvalidSpec  = errors.New("invalid sandbox spec")
	ErrUnavailable  = errors.New("container engine unavailable")
	ErrImage        = errors.New("runtime image unavailable")
	ErrStartFailed  = errors.New("sandbox failed to start")
	ErrReadyTimeout = errors.New("sandbox did not become ready in time")
)
