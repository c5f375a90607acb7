package server

// CloseListener closes the API's listener from outside, as a failing
// network would: the lifecycle test's way to kill serving.
func (s *Server) CloseListener() error { return s.ln.Close() }
