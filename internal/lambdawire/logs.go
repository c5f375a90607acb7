package lambdawire

import "time"

// Log line streams (LogLine.Stream).
const (
	// LogFunction is what the function wrote (its stdout and stderr).
	LogFunction = "function"
	// LogPlatform is Owl's START, END and REPORT lines.
	LogPlatform = "platform"
)

// LogLine is one line of a function's log, as GET
// /owl/v1/functions/NAME/logs?format=json streams them (one JSON object a
// line). Time is when Owl stored the line, within milliseconds of the
// function writing it; RequestID and Version are the invocation's (empty
// for lines of logs stored before Owl kept them).
type LogLine struct {
	Time      time.Time `json:"time"`
	RequestID string    `json:"requestId,omitempty"`
	Version   string    `json:"version,omitempty"`
	Stream    string    `json:"stream"`
	Message   string    `json:"message"`
}
