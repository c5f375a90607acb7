package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/owl-project/owl/internal/lambdawire"
)

// EventFilter selects records of the event log.
type EventFilter struct {
	// Function selects one function's events; "" all.
	Function string
	// Since and Until bound the records' times; zero: unbounded.
	Since, Until time.Time
	// Limit bounds a page (0: the server's default, 100); Marker is a
	// previous page's NextMarker.
	Limit  int
	Marker string
}

// EventPage is a page of the event log, oldest first.
type EventPage struct {
	Events []lambdawire.CloudEvent
	// Raw holds each record as the server sent it (CloudEvents JSON).
	Raw        []json.RawMessage
	NextMarker string
}

// ListEvents lists a page of the event log (Owl's GET /owl/v1/events).
func (c *Client) ListEvents(ctx context.Context, f EventFilter) (EventPage, error) {
	q := url.Values{}
	if f.Function != "" {
		q.Set("function", f.Function)
	}
	setTimeRange(q, f.Since, f.Until)
	if f.Limit > 0 {
		q.Set("limit", strconv.Itoa(f.Limit))
	}
	if f.Marker != "" {
		q.Set("marker", f.Marker)
	}
	var out lambdawire.EventList
	if err := c.doJSON(ctx, http.MethodGet, "/owl/v1/events", q, nil, nil, &out); err != nil {
		return EventPage{}, err
	}
	page := EventPage{Raw: out.Events, NextMarker: out.NextMarker}
	for _, raw := range out.Events {
		var ce lambdawire.CloudEvent
		if err := json.Unmarshal(raw, &ce); err != nil {
			return EventPage{}, fmt.Errorf("decoding an event log record: %w", err)
		}
		page.Events = append(page.Events, ce)
	}
	return page, nil
}

// GetEvent returns one record of the event log: decoded, and as the
// server sent it (CloudEvents JSON).
func (c *Client) GetEvent(ctx context.Context, id string) (lambdawire.CloudEvent, json.RawMessage, error) {
	var raw json.RawMessage
	if err := c.doJSON(ctx, http.MethodGet, "/owl/v1/events/"+url.PathEscape(id), nil, nil, nil, &raw); err != nil {
		return lambdawire.CloudEvent{}, nil, err
	}
	var ce lambdawire.CloudEvent
	if err := json.Unmarshal(raw, &ce); err != nil {
		return ce, nil, fmt.Errorf("decoding event %s: %w", id, err)
	}
	return ce, raw, nil
}

// ReplayEvents re-delivers the events of a function in a time range
// (Owl's POST /owl/v1/events/replay).
func (c *Client) ReplayEvents(ctx context.Context, in lambdawire.ReplayInput) (lambdawire.ReplayOutput, error) {
	var out lambdawire.ReplayOutput
	err := c.doJSON(ctx, http.MethodPost, "/owl/v1/events/replay", nil, in, nil, &out)
	return out, err
}

// CreateTrigger creates a schedule (Owl's POST /owl/v1/triggers).
func (c *Client) CreateTrigger(ctx context.Context, in lambdawire.TriggerInput) (lambdawire.Trigger, error) {
	var out lambdawire.Trigger
	err := c.doJSON(ctx, http.MethodPost, "/owl/v1/triggers", nil, in, nil, &out)
	return out, err
}

// Triggers lists the schedules.
func (c *Client) Triggers(ctx context.Context) ([]lambdawire.Trigger, error) {
	var out lambdawire.TriggerList
	err := c.doJSON(ctx, http.MethodGet, "/owl/v1/triggers", nil, nil, nil, &out)
	return out.Triggers, err
}

// DeleteTrigger deletes the schedule named name.
func (c *Client) DeleteTrigger(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/owl/v1/triggers/"+url.PathEscape(name), nil, nil, nil, nil)
}

// AddRoute adds a route to Owl's HTTP API (POST /owl/v1/routes).
func (c *Client) AddRoute(ctx context.Context, in lambdawire.RouteInput) (lambdawire.Route, error) {
	var out lambdawire.Route
	err := c.doJSON(ctx, http.MethodPost, "/owl/v1/routes", nil, in, nil, &out)
	return out, err
}

// Routes lists the HTTP API's routes.
func (c *Client) Routes(ctx context.Context) ([]lambdawire.Route, error) {
	var out lambdawire.RouteList
	err := c.doJSON(ctx, http.MethodGet, "/owl/v1/routes", nil, nil, nil, &out)
	return out.Routes, err
}

// DeleteRoute deletes a route, by id or by key.
func (c *Client) DeleteRoute(ctx context.Context, idOrKey string) error {
	return c.doJSON(ctx, http.MethodDelete, "/owl/v1/routes/"+url.PathEscape(idOrKey), nil, nil, nil, nil)
}

// CreateMapping creates an event source mapping (CreateEventSourceMapping).
func (c *Client) CreateMapping(ctx context.Context, in lambdawire.EventSourceMappingInput) (lambdawire.EventSourceMappingConfiguration, error) {
	var out lambdawire.EventSourceMappingConfiguration
	err := c.doJSON(ctx, http.MethodPost, "/2015-03-31/event-source-mappings/", nil, in, nil, &out)
	return out, err
}

// Mappings lists the event source mappings.
func (c *Client) Mappings(ctx context.Context) ([]lambdawire.EventSourceMappingConfiguration, error) {
	var out lambdawire.EventSourceMappingList
	err := c.doJSON(ctx, http.MethodGet, "/2015-03-31/event-source-mappings/", nil, nil, nil, &out)
	return out.EventSourceMappings, err
}

// DeleteMapping deletes the event source mapping uuid.
func (c *Client) DeleteMapping(ctx context.Context, uuid string) error {
	return c.doJSON(ctx, http.MethodDelete, "/2015-03-31/event-source-mappings/"+url.PathEscape(uuid), nil, nil, nil, nil)
}

// Publish publishes data on a NATS subject (Owl's /owl/v1/events/publish).
func (c *Client) Publish(ctx context.Context, subject string, data json.RawMessage) (lambdawire.PublishOutput, error) {
	var out lambdawire.PublishOutput
	err := c.doJSON(ctx, http.MethodPost, "/owl/v1/events/publish", nil, lambdawire.PublishInput{Subject: subject, Data: data}, nil, &out)
	return out, err
}

// CreateURL gives name[:qualifier] a function URL (CreateFunctionUrlConfig).
func (c *Client) CreateURL(ctx context.Context, name, qualifier, authType string) (lambdawire.FunctionURLConfig, error) {
	var out lambdawire.FunctionURLConfig
	err := c.doJSON(ctx, http.MethodPost, "/2021-10-31/functions/"+url.PathEscape(name)+"/url", qualifierQuery(qualifier),
		lambdawire.FunctionURLConfigInput{AuthType: &authType}, nil, &out)
	return out, err
}

// URLs lists name's function URLs (ListFunctionUrlConfigs).
func (c *Client) URLs(ctx context.Context, name string) ([]lambdawire.FunctionURLConfig, error) {
	var out lambdawire.FunctionURLConfigList
	err := c.doJSON(ctx, http.MethodGet, "/2021-10-31/functions/"+url.PathEscape(name)+"/urls", nil, nil, nil, &out)
	return out.FunctionUrlConfigs, err
}

// DeleteURL deletes name[:qualifier]'s function URL.
func (c *Client) DeleteURL(ctx context.Context, name, qualifier string) error {
	return c.doJSON(ctx, http.MethodDelete, "/2021-10-31/functions/"+url.PathEscape(name)+"/url", qualifierQuery(qualifier), nil, nil, nil)
}

func qualifierQuery(q string) url.Values {
	if q == "" {
		return nil
	}
	return url.Values{"Qualifier": {q}}
}

// setTimeRange sets the since and until of a listing's query (RFC 3339,
// UTC); a zero time is left out.
func setTimeRange(q url.Values, since, until time.Time) {
	if !since.IsZero() {
		q.Set("since", since.UTC().Format(time.RFC3339Nano))
	}
	if !until.IsZero() {
		q.Set("until", until.UTC().Format(time.RFC3339Nano))
	}
}

// CreateStream makes a JetStream stream of the user's (POST
// /owl/v1/streams), for stream triggers to read.
func (c *Client) CreateStream(ctx context.Context, in lambdawire.StreamInput) (lambdawire.Stream, error) {
	var out lambdawire.Stream
	err := c.doJSON(ctx, http.MethodPost, "/owl/v1/streams", nil, in, nil, &out)
	return out, err
}

// Streams lists the user's streams.
func (c *Client) Streams(ctx context.Context) ([]lambdawire.Stream, error) {
	var out lambdawire.StreamList
	err := c.doJSON(ctx, http.MethodGet, "/owl/v1/streams", nil, nil, nil, &out)
	return out.Streams, err
}

// DeleteStream deletes the user's stream name and what it holds.
func (c *Client) DeleteStream(ctx context.Context, name string) error {
	return c.doJSON(ctx, http.MethodDelete, "/owl/v1/streams/"+url.PathEscape(name), nil, nil, nil, nil)
}
