package lambdaapi

import (
	"context"
	"net/http"
	"time"

	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/lambdawire"
	"github.com/owl-project/owl/internal/routes"
)

// Owl's HTTP API: routes ("GET /users/{id}" → a function) served under
// /http/ as payload format 2.0 events (internal/routes, docs/http.md),
// managed under /owl/v1/routes.

// routesPrefix is where the route table is served.
const routesPrefix = "/http"

// Routes is the route table.
type Routes interface {
	http.Handler
	Add(ctx context.Context, key, function, authType string) (routes.Route, error)
	List() []routes.Route
	Delete(ctx context.Context, id string) error
}

// ServeRoute serves a request the route table matched to rt (the table
// calls it; r's path is the route's, without /http).
func (a *API) ServeRoute(w http.ResponseWriter, r *http.Request, rt routes.Route) {
	a.serveHTTPEvent(w, r, httpTarget{function: rt.Function, qualifier: rt.Qualifier, authType: rt.AuthType,
		apiID: "owl", routeKey: rt.Key, params: routes.Params(rt.Key), path: r.URL.Path})
}

// serveRoutes is the handler of every request under /http/.
func (a *API) serveRoutes(w http.ResponseWriter, r *http.Request) {
	if a.opts.Routes == nil {
		urlMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	http.StripPrefix(routesPrefix, a.opts.Routes).ServeHTTP(w, r)
}

func (a *API) routeTable() (Routes, error) {
	if a.opts.Routes == nil {
		return nil, lambdaerr.New(lambdaerr.InvalidParameterValue, "Routes are not enabled on this node.")
	}
	return a.opts.Routes, nil
}

func (a *API) addRoute(w http.ResponseWriter, r *http.Request, body []byte) error {
	t, err := a.routeTable()
	if err != nil {
		return err
	}
	var in lambdawire.RouteInput
	if err := decode(body, &in); err != nil {
		return err
	}
	rt, err := t.Add(r.Context(), in.RouteKey, in.Function, in.AuthType)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, wireRoute(rt))
	return nil
}

func (a *API) listRoutes(w http.ResponseWriter, r *http.Request, _ []byte) error {
	t, err := a.routeTable()
	if err != nil {
		return err
	}
	out := lambdawire.RouteList{Routes: []lambdawire.Route{}}
	for _, rt := range t.List() {
		out.Routes = append(out.Routes, wireRoute(rt))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// deleteRoute is DELETE /owl/v1/routes/{id}: a route's id, or its key
// (path-escaped: "GET%20%2Fusers%2F%7Bid%7D").
func (a *API) deleteRoute(w http.ResponseWriter, r *http.Request, _ []byte) error {
	t, err := a.routeTable()
	if err != nil {
		return err
	}
	if err := t.Delete(r.Context(), r.PathValue("id")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

func wireRoute(rt routes.Route) lambdawire.Route {
	fn := rt.Function
	if rt.Qualifier != "" {
		fn += ":" + rt.Qualifier
	}
	return lambdawire.Route{ID: rt.ID, RouteKey: rt.Key, Function: fn, AuthType: rt.AuthType, CreatedAt: rt.Created.Format(time.RFC3339)}
}
