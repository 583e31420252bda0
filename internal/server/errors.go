package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/berth-dev/berth/internal/agentapi"
	"github.com/berth-dev/berth/internal/client"
	"github.com/berth-dev/berth/internal/sandbox"
)

// badRequest is a mistake in the request itself: its message names the
// field or parameter.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func badRequestf(format string, args ...any) error {
	return &badRequest{fmt.Sprintf(format, args...)}
}

// errForbidden: the tenant may not ask for this.
var errForbidden = errors.New("forbidden")

// errShuttingDown: the server is shutting down.
var errShuttingDown = errors.New("server is shutting down")

// quotaError is a tenant's quota that a create would exceed.
type quotaError struct{ msg string }

func (e *quotaError) Error() string { return e.msg }

// errNoApproval: no such action waits for the tenant's approval.
var errNoApproval = errors.New("no such approval")

// errAgent: the sandbox's agent did not answer.
var errAgent = errors.New("sandbox agent unreachable")

// errorStatus is the one place an error becomes an HTTP status and a code.
func errorStatus(err error) (int, string) {
	var (
		br     *badRequest
		mb     *http.MaxBytesError
		qe     *quotaError
		apiErr *agentapi.APIError
	)
	switch {
	case errors.As(err, &mb):
		return http.StatusRequestEntityTooLarge, client.CodeTooLarge
	case errors.As(err, &br):
		return http.StatusBadRequest, client.CodeBadRequest
	case errors.Is(err, errUnauthorized):
		return http.StatusUnauthorized, client.CodeUnauthorized
	case errors.Is(err, errForbidden):
		return http.StatusForbidden, client.CodeForbidden
	case errors.As(err, &qe):
		return http.StatusTooManyRequests, client.CodeQuota
	case errors.Is(err, sandbox.ErrNotFound), errors.Is(err, errNoApproval), errors.Is(err, errNoPool):
		return http.StatusNotFound, client.CodeNotFound
	case errors.Is(err, sandbox.ErrAmbiguous):
		return http.StatusConflict, client.CodeAmbiguous
	case errors.Is(err, sandbox.ErrNotRunning):
		return http.StatusConflict, client.CodeNotRunning
	case errors.Is(err, sandbox.ErrConflict):
		return http.StatusConflict, client.CodeConflict
	case errors.Is(err, sandbox.ErrInvalidSpec):
		return http.StatusBadRequest, client.CodeInvalidSpec
	case errors.Is(err, sandbox.ErrImage):
		return http.StatusUnprocessableEntity, client.CodeImage
	case errors.Is(err, sandbox.ErrStartFailed):
		return http.StatusBadGateway, client.CodeStartFailed
	case errors.Is(err, sandbox.ErrReadyTimeout):
		return http.StatusGatewayTimeout, client.CodeReadyTimeout
	case errors.Is(err, sandbox.ErrUnavailable), errors.Is(err, errShuttingDown):
		return http.StatusServiceUnavailable, client.CodeUnavailable
	case errors.Is(err, errAgent):
		return http.StatusBadGateway, client.CodeAgent
	case errors.As(err, &apiErr):
		// The agent refused the request (a bad exec...): its answer
		// passes through.
		if apiErr.Status >= 400 && apiErr.Status < 600 {
			return apiErr.Status, apiErr.Err.Code
		}
		return http.StatusBadGateway, client.CodeAgent
	case errors.Is(err, context.DeadlineExceeded):
		return http.StatusGatewayTimeout, client.CodeUnavailable
	}
	return http.StatusInternalServerError, client.CodeInternal
}

// writeError answers err as {"code","message"}.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	status, code := errorStatus(err)
	msg := err.Error()
	var apiErr *agentapi.APIError
	if errors.As(err, &apiErr) && apiErr.Err.Message != "" {
		msg = apiErr.Err.Message
	}
	s.metrics.errors.WithLabelValues(code).Inc()
	if status >= 500 {
		s.log.Warn("request failed", "method", r.Method, "path", r.URL.Path, "status", status, "err", err)
	}
	writeJSON(w, status, client.Error{Code: code, Message: msg})
}

// writeJSON answers v with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}

// decodeJSON reads one JSON object into v: at most MaxRequestBytes,
// no unknown field, nothing after it. Its errors name the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body := http.MaxBytesReader(w, r.Body, client.MaxRequestBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			return err
		}
		return badRequestf("invalid JSON body: unexpected data after the object")
	}
	return nil
}

// jsonError names what is wrong with a body.
func jsonError(err error) error {
	var (
		syn *json.SyntaxError
		typ *json.UnmarshalTypeError
		mb  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mb):
		return err
	case errors.Is(err, io.EOF):
		return badRequestf("invalid JSON body: empty; want an object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequestf("invalid JSON body: it ends too soon")
	case errors.As(err, &syn):
		return badRequestf("invalid JSON body at byte %d: %v", syn.Offset, syn)
	case errors.As(err, &typ):
		if typ.Field != "" {
			return badRequestf("field %q: expected %s, got JSON %s", typ.Field, typ.Type, typ.Value)
		}
		return badRequestf("invalid JSON body: expected %s, got JSON %s", typ.Type, typ.Value)
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		return badRequestf("unknown field %s", f)
	}
	return badRequestf("invalid JSON body: %s", strings.TrimPrefix(msg, "json: "))
}
