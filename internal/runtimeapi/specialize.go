package runtimeapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// SpecializePath is Owl's own Runtime API endpoint for pre-started runtimes
// (pre-warming): a runtime started before any function was chosen for it
// (its interpreter and Owl's bootstrap loaded, nothing of a function) asks
//
//	GET /2018-06-01/runtime/owl/specialize   (Connection: close)
//
// and blocks until the worker has attached a function's code to the
// environment and answers with the function's whole environment:
//
//	200 {"env": ["KEY=value", ...]}
//
// The runtime replaces its environment with it, enters /var/task and goes on
// as a freshly started runtime of that function would (load the handler,
// /next). Only the very first connection of a pre-started environment is
// read this way, by [AwaitSpecialize], before the environment's [Server]
// serves the listener; a normal runtime never asks it (and a Server answers
// 404).
const SpecializePath = "/2018-06-01/runtime/owl/specialize"

// Specialization is the answer to a SpecializePath request.
type Specialization struct {
	// Env is the function's environment, "KEY=value" each: all of it, not
	// additions.
	Env []string `json:"env"`
}

// SpecializeRequest is a pre-started runtime waiting for its function: the
// connection of its SpecializePath request, not yet answered.
type SpecializeRequest struct {
	conn net.Conn
}

// deadliner is a listener whose Accept can be interrupted.
type deadliner interface {
	SetDeadline(time.Time) error
}

// AwaitSpecialize accepts the first connection on ln and reads its request,
// which must be GET SpecializePath. It returns once the runtime is waiting
// for its function: its start-up is done. ctx bounds the wait (ln must then
// support deadlines, as a *net.TCPListener does). ln is left open, to be
// served by a Server once the runtime has been answered.
func AwaitSpecialize(ctx context.Context, ln net.Listener) (*SpecializeRequest, error) {
	if d, ok := ln.(deadliner); ok {
		stop := context.AfterFunc(ctx, func() { _ = d.SetDeadline(time.Unix(1, 0)) })
		defer func() {
			if stop() {
				return
			}
			_ = d.SetDeadline(time.Time{})
		}()
	}
	conn, err := ln.Accept()
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("waiting for the pre-started runtime: %w", ctx.Err())
		}
		return nil, fmt.Errorf("waiting for the pre-started runtime: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	req, err := http.ReadRequest(bufio.NewReaderSize(conn, 4096))
	stop()
	if err == nil && (req.Method != http.MethodGet || req.URL.Path != SpecializePath) {
		err = fmt.Errorf("unexpected first request %s %s", req.Method, req.URL.Path)
	}
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			err = errors.Join(err, ctx.Err())
		}
		return nil, fmt.Errorf("pre-started runtime: %w", err)
	}
	_ = conn.SetReadDeadline(time.Time{})
	return &SpecializeRequest{conn: conn}, nil
}

// Answer sends the function's environment and closes the connection.
func (r *SpecializeRequest) Answer(s Specialization) error {
	body, err := json.Marshal(s)
	if err != nil {
		r.conn.Close()
		return err
	}
	head := "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n"
	_, err = r.conn.Write(append([]byte(head), body...))
	if cerr := r.conn.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("answering the pre-started runtime: %w", err)
	}
	return nil
}

// Close drops the request unanswered (the runtime then exits).
func (r *SpecializeRequest) Close() error { return r.conn.Close() }
