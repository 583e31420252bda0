package agent

import (
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/berth-dev/berth/internal/agentapi"
)

// apiError is an error answer: its HTTP status and its JSON body.
type apiError struct {
	Status int
	Body   agentapi.Error
}

func (e *apiError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Body.Error()) }

func badRequest(format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Body: agentapi.Error{
		Code: agentapi.CodeBadRequest, Message: fmt.Sprintf(format, args...),
	}}
}

func newAPIError(status int, code, format string, args ...any) *apiError {
	return &apiError{Status: status, Body: agentapi.Error{Code: code, Message: fmt.Sprintf(format, args...)}}
}

// writeJSON answers v as JSON with the status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	// An error here means the client went away; there is no one to tell.
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *apiError) {
	writeJSON(w, e.Status, e.Body)
}
