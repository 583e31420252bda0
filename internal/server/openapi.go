package server

import (
	_ "embed"
	"net/http"
)

// openAPI is the OpenAPI 3 document of the API; a test checks that it and
// the route table name the same routes.
//
//go:embed openapi.json
var openAPI []byte

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(openAPI)
}
