package agent

// fileRoutes serves the files API. (Stub: filled in by the files work.)
func (s *Server) fileRoutes() []route { return nil }
