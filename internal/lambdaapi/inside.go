package lambdaapi

import (
	"context"
	"net/http"

	"github.com/owl-project/owl/internal/auth"
	"github.com/owl-project/owl/internal/events"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/registry"
)

// A function's own calls: its environment's Runtime API listener serves
// this handler beside the Runtime API (worker/caller.go), for the SDKs
// inside the sandbox (AWS_ENDPOINT_URL_LAMBDA). It takes the
// environment's own credentials only, and only Invoke (RequestResponse,
// Event, DryRun) and Owl's publish: a function cannot manage functions.
// Every call goes one hop further down its invocation's chain, and a call
// past registry.MaxChainDepth is refused (RecursiveInvocationException),
// as an asynchronous event there is stopped.

// Caller is an environment calling back.
type Caller struct {
	Function string
	// Credentials are the environment's own: AccessKeyID and
	// SecretAccessKey sign, Token is its AWS_SESSION_TOKEN.
	Credentials auth.Credentials
	// Current is the running invocation's depth and chain origin.
	Current func() (depth int, origin string)
}

type chainKey struct{}

// hop is where a function's call stands in its chain.
type hop struct {
	depth  int
	origin string
	caller string // the calling function's name
}

func chainOf(ctx context.Context) hop {
	h, _ := ctx.Value(chainKey{}).(hop)
	return h
}

// Inside is the handler of c's calls.
func (a *API) Inside(c Caller) (http.Handler, error) {
	authn, err := auth.NewAuthenticator([]auth.Credentials{{AccessKeyID: c.Credentials.AccessKeyID,
		SecretAccessKey: c.Credentials.SecretAccessKey, Token: c.Credentials.Token}})
	if err != nil {
		return nil, err
	}
	with := func(limit int64, fn handlerFunc) http.Handler {
		return a.authenticatedWith(authn, nil, limit, func(w http.ResponseWriter, r *http.Request, body []byte) error {
			if tok := r.Header.Get("X-Amz-Security-Token"); tok != "" && tok != c.Credentials.Token {
				return lambdaerr.New(lambdaerr.UnrecognizedClient, "The security token included in the request is invalid.")
			}
			depth, origin := c.Current()
			ctx := context.WithValue(r.Context(), chainKey{}, hop{depth: depth + 1, origin: origin, caller: c.Function})
			return fn(w, r.WithContext(ctx), body)
		})
	}
	mux := http.NewServeMux()
	mux.Handle("POST /2015-03-31/functions/{name}/invocations", with(MaxSyncPayload, a.invokeInside))
	mux.Handle("POST /owl/v1/events/publish", with(events.MaxPayload+1<<16, a.publishEvent))
	mux.Handle("/", with(0, func(w http.ResponseWriter, r *http.Request, _ []byte) error {
		return lambdaerr.New(lambdaerr.AccessDenied,
			"A function's own credentials may only invoke functions and publish events, not %s %s.", r.Method, r.URL.Path)
	}))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("x-amzn-RequestId", lambdawire.NewRequestID())
		mux.ServeHTTP(w, r)
	}), nil
}

// invokeInside is Invoke from inside a function: refused past the chain's
// depth limit unless the target's recursion config is Allow.
func (a *API) invokeInside(w http.ResponseWriter, r *http.Request, body []byte) error {
	name, _, err := qualified(r)
	if err != nil {
		return err
	}
	if h := chainOf(r.Context()); h.depth >= registry.MaxChainDepth && !a.reg.RecursionAllowed(name) {
		return lambdaerr.New(lambdaerr.RecursiveInvocation,
			"Lambda has detected your function being invoked in a recursive loop and stopped the invocation: %d calls and events since request %s (the recursion config of %s is Terminate).",
			h.depth, h.origin, name)
	}
	return a.invoke(w, r, body)
}
