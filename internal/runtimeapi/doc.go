// Package runtimeapi owns the Lambda Runtime API of one execution
// environment (sandbox): the HTTP server a function's runtime — for example an
// unmodified aws-lambda-go binary — long-polls for events and posts results
// to, and the hand-over between that server and Owl's worker.
//
// # Protocol
//
// The runtime speaks the 2018-06-01 Runtime API:
//
//	GET  /2018-06-01/runtime/invocation/next          200, body = event, Lambda-Runtime-* headers
//	POST /2018-06-01/runtime/invocation/{id}/response 202 {"status":"OK"}
//	POST /2018-06-01/runtime/invocation/{id}/error    202 {"status":"OK"}
//	POST /2018-06-01/runtime/init/error               202 {"status":"OK"}
//
// Violations are answered as Lambda does, with a body
// {"errorMessage":"…","errorType":"…"}: 400 InvalidRequestID (a result for an
// id that is not the active invocation), 403 InvalidStateTransition (a second
// /next while one is parked or an invocation is active, a second result for
// the same invocation, /init/error after init), 413 RequestEntityTooLarge (a
// result above Config.MaxResponseBytes), 404 for unknown paths and 405 for
// wrong methods.
//
// # The worker's side
//
// [Server.WaitReady] reports the end of init: the runtime's first /next, or
// the [InitError] it posted. [Server.Invoke] hands one event to the parked
// (or the next) /next and waits for the /response or /error of that request
// id. Invoke gives these guarantees:
//
//   - One invocation at a time: a second concurrent Invoke fails at once with
//     [ErrBusy]; it never queues behind the first.
//   - An [Outcome] is returned only for the request id that was invoked;
//     results posted for other ids are refused with 400 and never reach the
//     caller.
//   - A response the runtime posts is read completely (up to the limit)
//     before Invoke returns, and trailers are honoured: aws-lambda-go reports
//     a failure while streaming a response in the Lambda-Runtime-Function-
//     Error-Type and -Error-Body trailers. For an invocation given a Stream,
//     a streamed response is copied to it as it arrives instead (stream.go).
//   - When ctx ends first, Invoke returns ctx.Err(). An event not yet taken
//     by the runtime is withdrawn; one already delivered stays active until
//     the runtime posts its result, which is then accepted (202, so the
//     runtime does not die of it) and discarded. Until then further Invokes
//     get ErrBusy. A caller that cancels because of a timeout or a crash is
//     expected to destroy the environment anyway.
//   - Invoke never times out by itself and starts no timers: the deadline is
//     the caller's ctx. It is also passed to the runtime as
//     Lambda-Runtime-Deadline-Ms.
//
// [Server.Close] closes the listener and every connection, unblocks parked
// /next requests, Invoke and WaitReady (with [ErrClosed]), and returns when
// Serve and all handlers have returned.
//
// # Extensions and telemetry
//
// The same listener serves Lambda's Extensions API (2020-01-01/extension:
// register, event/next, init/error, exit/error; extensions.go) and the
// Telemetry API's subscription (PUT 2022-07-01/telemetry; telemetry.go).
// [Server.WaitReady] also waits for every extension's init (the external
// ones of Config.Extensions to register, every registered one to ask for
// its first event). The worker sends INVOKE with
// [Server.ExtensionsInvoke], ends an invocation with
// [Server.AwaitExtensions], sends SHUTDOWN with [Server.Shutdown] and
// reports the platform's events with the Telemetry* methods, which
// subscribers get in batches POSTed through Config.Dial. An extension's
// failure is an [ExtensionError]. Extensions have their own lock, never
// held with the Runtime API's; none of this adds a goroutine or timer to
// an invocation (a subscriber has one goroutine for its deliveries).
//
// # Hot path
//
// The server speaks HTTP/1.1 itself (conn.go; requests are parsed by
// net/http's http.ReadRequest) rather than through net/http's server, whose
// per-request background-read goroutine was a measurable share of a warm
// invocation. One goroutine per connection reads requests; a parked /next
// leaves it reading (a hang-up ends the read), and Invoke writes the event
// onto that connection itself. A warm invocation thus costs one goroutine
// hand-off: the /response handler sends the Outcome back to Invoke over a
// buffered channel. State is one small state machine under one mutex
// (invState in server.go lists its transitions); this package starts no
// goroutine and no timer per invocation.
package runtimeapi
