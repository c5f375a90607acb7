package worker

import "fmt"

// envState is where an environment is in its life. Every change goes
// through env.moveLocked, under envPool.mu, and must be one of transitions:
//
//	starting ──▶ busy ◀──▶ idle ──▶ frozen
//	              ▲                   │
//	              └───────────────────┘   (and frozen ──▶ idle if freezing fails)
//	any state ──▶ retiring
//
// Only idle and frozen environments are in their pool's idle list; only
// busy ones run an invocation; a retiring one is being torn down and never
// leaves that state.
type envState uint8

const (
	// stateStarting: the sandbox exists and its runtime is initialising.
	stateStarting envState = iota
	// stateBusy: handed to one invocation (or to provisioning, which
	// releases it at once).
	stateBusy
	// stateIdle: in its pool's idle list, waiting for an invocation.
	stateIdle
	// stateFrozen: idle, and its sandbox is being or has been frozen (no
	// CPU); the invocation that takes it thaws it.
	stateFrozen
	// stateRetiring: out of the pool and being destroyed; terminal.
	stateRetiring
)

var stateNames = [...]string{
	stateStarting: "starting",
	stateBusy:     "busy",
	stateIdle:     "idle",
	stateFrozen:   "frozen",
	stateRetiring: "retiring",
}

func (s envState) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return fmt.Sprintf("envState(%d)", s)
}

// transitions lists, for each state, the states it may move to.
var transitions = [...][]envState{
	stateStarting: {stateBusy, stateRetiring},
	stateBusy:     {stateIdle, stateRetiring},
	stateIdle:     {stateBusy, stateFrozen, stateRetiring},
	stateFrozen:   {stateBusy, stateIdle, stateRetiring},
	stateRetiring: nil,
}

// canMove reports whether from may move to to.
func canMove(from, to envState) bool {
	if int(from) >= len(transitions) {
		return false
	}
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

// transitionError is an illegal state change: a bug in the worker, never a
// consequence of what a function or a caller does. The change is not made.
type transitionError struct {
	env      string
	from, to envState
}

func (e *transitionError) Error() string {
	return fmt.Sprintf("worker bug: environment %s cannot go from %s to %s", e.env, e.from, e.to)
}

// moveLocked changes e's state, or returns a *transitionError and leaves
// it. envPool.mu must be held.
func (e *env) moveLocked(to envState) error {
	if !canMove(e.state, to) {
		return &transitionError{env: e.id, from: e.state, to: to}
	}
	e.state = to
	return nil
}
