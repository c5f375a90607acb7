package server

import (
	"context"
	"errors"
	"strings"

	"github.com/owl-project/owl/internal/lambdaapi"
	"github.com/owl-project/owl/internal/natsbus"
)

// health is the node's readiness, served unauthenticated at /healthz
// (lambdaapi.Options.Health): the embedded NATS connection ("nats") and
// JetStream ("jetstream") answer, the sandbox manager can still create
// sandboxes ("sandbox"), and the data dir's disk has more than the disk
// reserve free ("disk"; below it the store refuses writes), and JetStream
// writes to every stream ("store"; a stream whose write failed on a disk
// filled from under the reserve takes none until a restart).
// The errors go to the server's log only.
func (s *Server) health(ctx context.Context) []lambdaapi.HealthProblem {
	var problems []lambdaapi.HealthProblem
	if err := s.bus.Check(ctx); err != nil {
		check := "nats"
		if errors.Is(err, natsbus.ErrNoJetStream) {
			check = "jetstream"
		}
		problems = append(problems, lambdaapi.HealthProblem{Check: check, Err: err})
	}
	if s.sbm != nil { // an api node has none
		if err := s.sbm.Check(); err != nil {
			problems = append(problems, lambdaapi.HealthProblem{Check: "sandbox", Err: err})
		}
	}
	// The store's own disk guard: below the reserve, writes are refused.
	if err := s.space.Check(0); err != nil {
		problems = append(problems, lambdaapi.HealthProblem{Check: "disk", Err: err})
	}
	if errs := s.bus.WriteErrors(); len(errs) > 0 {
		problems = append(problems, lambdaapi.HealthProblem{Check: "store", Err: errors.New(strings.Join(errs, "; "))})
	}
	return problems
}
