package lambdawire

import "encoding/json"

// Event source mappings (2015-03-31/event-source-mappings): Owl's sources
// are NATS subjects (arn:owl:nats:::<subject>).

// Filter is one pattern of FilterCriteria (Lambda's filter syntax, as a
// JSON string).
type Filter struct {
	Pattern *string `json:"Pattern,omitempty"`
}

// FilterCriteria are a mapping's filters: a message is kept when any
// matches.
type FilterCriteria struct {
	Filters []Filter `json:"Filters"`
}

// MappingDestinationConfig says where messages given up go.
type MappingDestinationConfig struct {
	OnFailure *OnDestination `json:"OnFailure,omitempty"`
}

// EventSourceMappingInput is the body of Create and Update.
type EventSourceMappingInput struct {
	EventSourceArn                 *string                   `json:"EventSourceArn,omitempty"`
	FunctionName                   *string                   `json:"FunctionName,omitempty"`
	Enabled                        *bool                     `json:"Enabled,omitempty"`
	BatchSize                      *int                      `json:"BatchSize,omitempty"`
	MaximumBatchingWindowInSeconds *int                      `json:"MaximumBatchingWindowInSeconds,omitempty"`
	FilterCriteria                 *FilterCriteria           `json:"FilterCriteria,omitempty"`
	DestinationConfig              *MappingDestinationConfig `json:"DestinationConfig,omitempty"`
	MaximumRetryAttempts           *int                      `json:"MaximumRetryAttempts,omitempty"`
	BisectBatchOnFunctionError     *bool                     `json:"BisectBatchOnFunctionError,omitempty"`
	FunctionResponseTypes          *[]string                 `json:"FunctionResponseTypes,omitempty"`
	StartingPosition               *string                   `json:"StartingPosition,omitempty"`
	// StartingPositionTimestamp (epoch seconds) goes with AT_TIMESTAMP.
	StartingPositionTimestamp *float64 `json:"StartingPositionTimestamp,omitempty"`
}

// EventSourceMappingConfiguration is a mapping as the API returns it.
type EventSourceMappingConfiguration struct {
	UUID                           string                    `json:"UUID"`
	EventSourceMappingArn          string                    `json:"EventSourceMappingArn"`
	EventSourceArn                 string                    `json:"EventSourceArn"`
	FunctionArn                    string                    `json:"FunctionArn"`
	State                          string                    `json:"State"`
	StateTransitionReason          string                    `json:"StateTransitionReason"`
	BatchSize                      int                       `json:"BatchSize"`
	MaximumBatchingWindowInSeconds int                       `json:"MaximumBatchingWindowInSeconds"`
	FilterCriteria                 *FilterCriteria           `json:"FilterCriteria,omitempty"`
	DestinationConfig              *MappingDestinationConfig `json:"DestinationConfig,omitempty"`
	MaximumRetryAttempts           int                       `json:"MaximumRetryAttempts"`
	BisectBatchOnFunctionError     bool                      `json:"BisectBatchOnFunctionError"`
	FunctionResponseTypes          []string                  `json:"FunctionResponseTypes,omitempty"`
	StartingPosition               string                    `json:"StartingPosition"`
	StartingPositionTimestamp      *float64                  `json:"StartingPositionTimestamp,omitempty"`
	LastModified                   float64                   `json:"LastModified"` // epoch seconds
}

// EventSourceMappingList is ListEventSourceMappings' answer.
type EventSourceMappingList struct {
	EventSourceMappings []EventSourceMappingConfiguration `json:"EventSourceMappings"`
	NextMarker          *string                           `json:"NextMarker,omitempty"`
}

// PublishInput publishes an event on a NATS subject (POST
// /owl/v1/events/publish).
type PublishInput struct {
	Subject string          `json:"Subject"`
	Data    json.RawMessage `json:"Data"`
}

// PublishOutput says where it went: Stored (with Sequence) when a mapping
// reads the subject, else sent on core NATS.
type PublishOutput struct {
	Stored   bool   `json:"Stored"`
	Sequence uint64 `json:"Sequence,omitempty"`
}
