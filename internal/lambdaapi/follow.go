package lambdaapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/telemetry"
)

// followLogs is GET /owl/v1/functions/{name}/logs?follow=true: the log's
// recent lines that q selects, then each new one as the function writes
// it, streamed (chunked text/plain, or application/x-ndjson) until the
// client leaves, the function is deleted (a last line says so) or the node
// shuts down. The last line is Owl's, as text even in JSON.
func (a *API) followLogs(w http.ResponseWriter, r *http.Request, fn string, q telemetry.LogQuery, asJSON bool) error {
	flusher, ok := w.(http.Flusher)
	if !ok {
		return lambdaerr.New(lambdaerr.InvalidParameterValue, "This connection cannot stream.")
	}
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	stop := context.AfterFunc(a.closing, cancel)
	defer stop()
	setLogContentType(w, asJSON)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	// Follow from before the tail is read: a line stored meanwhile is
	// shown twice at worst, never lost.
	followed := make(chan error, 1)
	batches := make(chan []lambdawire.LogLine, 64)
	go func() {
		followed <- a.logs.Follow(ctx, fn, q, func(lines []lambdawire.LogLine) error {
			select {
			case batches <- lines:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	if lines, err := a.logs.Tail(ctx, fn, q, 100); err == nil && len(lines) > 0 {
		_, _ = w.Write(appendLogLines(nil, lines, asJSON))
	}
	flusher.Flush()
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		select {
		case lines := <-batches:
			_, _ = w.Write(appendLogLines(nil, lines, asJSON))
			flusher.Flush()
		case err := <-followed:
			if err != nil && !errors.Is(err, context.Canceled) && ctx.Err() == nil {
				fmt.Fprintf(w, "owl: following the log stopped: %v\n", err)
			}
			return nil
		case <-check.C:
			if _, err := a.reg.Get(ctx, fn); lambdaerr.Is(err, lambdaerr.ResourceNotFound) {
				fmt.Fprintf(w, "owl: function %s was deleted; its log ends here\n", fn)
				return nil
			}
		case <-ctx.Done():
			if a.isClosing() {
				fmt.Fprintln(w, "owl: the server is shutting down; its log stream ends here")
			}
			return nil
		}
	}
}

func (a *API) isClosing() bool {
	select {
	case <-a.closing.Done():
		return true
	default:
		return false
	}
}

// Close ends the API's long-lived streams (log follows), so a graceful
// shutdown does not wait for their clients.
func (a *API) Close() { a.closeStreams() }
