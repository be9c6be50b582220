package server

// Patterns lists every registered route of the monitoring server.
func (s *Server) Patterns() []string { return s.patterns }
