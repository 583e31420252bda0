package agent

// ptyRoutes serves interactive terminals. (Stub: filled in by the PTY work.)
func (s *Server) ptyRoutes() []route { return nil }
