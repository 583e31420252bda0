package agent

// bgTable holds background processes. (Stub: filled in by the background
// processes work.)
type bgTable struct{}

func newBgTable(*Server) *bgTable { return &bgTable{} }

// close kills every background process.
func (t *bgTable) close() {}

func (s *Server) bgRoutes() []route { return nil }
