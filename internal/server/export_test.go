package server

import "github.com/nats-io/nats.go/jetstream"

// CloseListener closes the API's listener from outside, as a failing
// network would: the lifecycle test's way to kill serving.
func (s *Server) CloseListener() error { return s.ln.Close() }

// JetStream is the embedded NATS server's JetStream, as Owl's own
// connection sees it: the stream trigger test makes a user's stream with it.
func (s *Server) JetStream() jetstream.JetStream { return s.bus.JS }
