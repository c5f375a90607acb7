package lambdawire

import (
	"encoding/json"
	"time"
)

// Owl's event log API (/owl/v1/events): the records of accepted events,
// in CloudEvents 1.0's JSON format, and their replay (docs/events.md).

// CloudEvent is one record of the event log as the client reads it: the
// CloudEvents 1.0 attributes in their JSON format, and Owl's extensions.
type CloudEvent struct {
	SpecVersion     string          `json:"specversion"`
	ID              string          `json:"id"`
	Source          string          `json:"source"`
	Type            string          `json:"type"`
	Subject         string          `json:"subject,omitempty"`
	Time            time.Time       `json:"time"`
	DataContentType string          `json:"datacontenttype,omitempty"`
	Data            json.RawMessage `json:"data,omitempty"`
	// Qualifier is the version or alias the event invoked.
	Qualifier string `json:"owlqualifier,omitempty"`
	// ReplayOf is, on a replay, the id of the event it replays.
	ReplayOf string `json:"owlreplayof,omitempty"`
	// Depth and Origin place an event in a chain: the hops from its first
	// event (a destination record sent to a function is one hop) and
	// that event's id; absent on a chain's first event.
	Depth  int    `json:"owldepth,omitempty"`
	Origin string `json:"owlorigin,omitempty"`
}

// EventList is a page of the event log (GET /owl/v1/events), oldest
// first; NextMarker, when set, lists the next page (?marker=).
type EventList struct {
	Events     []json.RawMessage `json:"Events"`
	NextMarker string            `json:"NextMarker,omitempty"`
}

// ReplayInput asks to re-deliver the events Function received from Since
// to Until (RFC 3339; Until empty: up to now), to To (a function name,
// name:qualifier or ARN; empty: Function itself).
type ReplayInput struct {
	Function string `json:"Function"`
	Since    string `json:"Since"`
	Until    string `json:"Until,omitempty"`
	To       string `json:"To,omitempty"`
}

// ReplayOutput lists the events a replay stored, each a new asynchronous
// invocation (Id, its request id) of the event ReplayOf.
type ReplayOutput struct {
	Count    int             `json:"Count"`
	Replayed []ReplayedEvent `json:"Replayed"`
}

// ReplayedEvent is one event a replay re-delivered.
type ReplayedEvent struct {
	ID       string `json:"Id"`
	ReplayOf string `json:"ReplayOf"`
}

// TriggerInput creates a schedule (POST /owl/v1/triggers).
type TriggerInput struct {
	Name string `json:"Name"`
	// Schedule is rate(…), cron(…) or at(…), in Timezone (IANA; UTC when
	// empty).
	Schedule string `json:"Schedule"`
	Timezone string `json:"Timezone,omitempty"`
	// Function is a name, name:qualifier or function ARN.
	Function string `json:"Function"`
	// Input, when set, is the event of every firing; else EventBridge's
	// Scheduled Event.
	Input json.RawMessage `json:"Input,omitempty"`
	// CatchUp is "last" (fire the latest firing missed while Owl was
	// down; the default) or "none".
	CatchUp string `json:"CatchUp,omitempty"`
}

// Trigger is a schedule as the API shows it.
type Trigger struct {
	Name        string          `json:"Name"`
	Arn         string          `json:"Arn"`
	Schedule    string          `json:"Schedule"`
	Timezone    string          `json:"Timezone,omitempty"`
	Function    string          `json:"Function"`
	Input       json.RawMessage `json:"Input,omitempty"`
	CatchUp     string          `json:"CatchUp"`
	State       string          `json:"State"`
	StateReason string          `json:"StateReason,omitempty"`
	CreatedAt   time.Time       `json:"CreatedAt"`
	LastFiring  *time.Time      `json:"LastFiring,omitempty"`
	NextFiring  *time.Time      `json:"NextFiring,omitempty"`
}

// TriggerList is GET /owl/v1/triggers.
type TriggerList struct {
	Triggers []Trigger `json:"Triggers"`
}

// StreamInput creates a JetStream stream of the user's (POST
// /owl/v1/streams), the source of stream mappings
// (arn:owl:jetstream:::<Name>).
type StreamInput struct {
	Name     string   `json:"Name"`
	Subjects []string `json:"Subjects"`
	// MaxAgeSeconds drops messages older than it (0: no limit).
	MaxAgeSeconds int64 `json:"MaxAgeSeconds,omitempty"`
	// MaxBytes bounds what the stream holds (0: Owl's default, 64 MiB).
	MaxBytes int64 `json:"MaxBytes,omitempty"`
}

// Stream is a stream of the user's and what it holds.
type Stream struct {
	Name          string    `json:"Name"`
	StreamArn     string    `json:"StreamArn"`
	Subjects      []string  `json:"Subjects"`
	MaxAgeSeconds int64     `json:"MaxAgeSeconds"`
	MaxBytes      int64     `json:"MaxBytes"`
	Messages      uint64    `json:"Messages"`
	Bytes         uint64    `json:"Bytes"`
	FirstSequence uint64    `json:"FirstSequence"`
	LastSequence  uint64    `json:"LastSequence"`
	CreationTime  time.Time `json:"CreationTime"`
}

// StreamList is GET /owl/v1/streams.
type StreamList struct {
	Streams []Stream `json:"Streams"`
}
