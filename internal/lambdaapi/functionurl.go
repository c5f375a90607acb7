package lambdaapi

import (
	"encoding/base64"
	"encoding/json"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	lambdaevents "github.com/aws/aws-lambda-go/events"

	"github.com/owl-project/owl/internal/auth"
	"github.com/owl-project/owl/internal/lambdaerr"
	"github.com/owl-project/owl/internal/registry"
)

// Function URLs are served on the API listener at
// /lambda-url/<url-id>/<path>: the request becomes a payload format 2.0
// event (aws-lambda-go's LambdaFunctionURLRequest), the function runs
// synchronously, and its result becomes the HTTP response by Lambda's
// rules. A URL with AuthType NONE is public, as on Lambda; AWS_IAM needs a
// SigV4 signature (or Owl's bearer token). The event is aws-lambda-go's
// APIGatewayV2HTTPRequest: Lambda's function URL event is that format
// (routeKey and stage "$default"), which LambdaFunctionURLRequest trims.

// httpTarget is where an HTTP request goes (a function URL's or a
// route's function) and what its event says of how it got there.
type httpTarget struct {
	function, qualifier string // qualifier as stored ($LATEST or an alias)
	authType            string
	cors                *registry.Cors
	// apiID and routeKey are the event's requestContext.apiId and
	// routeKey ("$default" for a URL); params names the path parameters.
	apiID, routeKey string
	params          []string
	path            string // the path the function sees
	// stream: the URL's InvokeMode is RESPONSE_STREAM (urlstream.go).
	stream bool
}

// serveFunctionURL is the handler of every request under /lambda-url/.
func (a *API) serveFunctionURL(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, urlPathPrefix)
	id, path, _ := strings.Cut(rest, "/")
	c, ok := a.reg.URLByID(id)
	if !ok {
		urlMessage(w, http.StatusNotFound, "Not Found")
		return
	}
	a.serveHTTPEvent(w, r, httpTarget{function: c.FunctionName, qualifier: c.Qualifier, authType: c.AuthType,
		cors: c.Cors, apiID: c.URLID, routeKey: "$default", path: "/" + path, stream: c.InvokeMode == registry.InvokeResponseStream})
}

// serveHTTPEvent authenticates r as t asks, reads its body, answers a
// CORS preflight itself, else runs t's function on the request.
func (a *API) serveHTTPEvent(w http.ResponseWriter, r *http.Request, t httpTarget) {
	public := t.authType == registry.AuthNone
	var principal auth.Principal
	var verify *auth.Pending
	if !public {
		var err error
		if principal, verify, err = a.auth.AuthenticateHeaders(r); err != nil {
			urlMessage(w, http.StatusForbidden, "Forbidden")
			return
		}
	}
	// A public endpoint's body is a stranger's: it counts against the
	// budget of bodies not yet authenticated, as any request's does until
	// then.
	pending := public || verify != nil
	body, held, err := a.readBody(w, r, MaxSyncPayload, pending)
	if err != nil {
		a.refuseBody(w, r, err, MaxSyncPayload)
		return
	}
	defer a.bodies.give(held, pending)
	if verify != nil {
		if principal, err = verify.Verify(body); err != nil {
			urlMessage(w, http.StatusForbidden, "Forbidden")
			return
		}
	}
	if t.cors != nil && r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		preflight(w, r, t.cors)
		return
	}
	a.invokeHTTP(w, r, t, body, principal)
}

// invokeHTTP runs t's function on the request and writes its answer.
func (a *API) invokeHTTP(w http.ResponseWriter, r *http.Request, t httpTarget, body []byte, p auth.Principal) {
	requestID := w.Header().Get("x-amzn-RequestId")
	r, traceID, end := a.traceInvoke(r, "owl.api InvokeURL", t.function, requestID)
	var err error
	defer func() { end(err) }()
	payload, err := json.Marshal(a.httpEvent(r, t, body, p, requestID))
	if err != nil {
		urlMessage(w, http.StatusInternalServerError, "Internal Server Error")
		return
	}
	q := qualifierOf(t.qualifier)
	target, err := a.reg.ResolveForInvoke(r.Context(), t.function, q, rand.Float64())
	if err == nil {
		var us *urlStream
		req := InvokeRequest{Function: target.Function, RequestID: requestID, Payload: payload,
			TraceID: traceID, InvokedARN: a.reg.ARN(t.function, q)}
		if t.stream {
			us = newURLStream(r, w, t.cors)
			req.Stream = us
		}
		var res *InvokeResult
		res, err = a.invoker.Invoke(r.Context(), req)
		if us != nil && us.close(res, err) {
			return // the streamed answer has begun: it is the answer
		}
		if err == nil {
			cors(w, r, t.cors)
			if res.FunctionError {
				urlMessage(w, http.StatusBadGateway, "Internal Server Error")
				return
			}
			writeURLResponse(w, res.Payload)
			return
		}
	}
	cors(w, r, t.cors)
	switch e := lambdaerr.As(err); {
	case e.Code == lambdaerr.TooManyRequests:
		urlMessage(w, http.StatusTooManyRequests, "Rate Exceeded.")
	case e.Code == lambdaerr.ResourceNotFound:
		urlMessage(w, http.StatusNotFound, "Not Found")
	default:
		a.logger.Warn("an HTTP invocation failed", "function", t.function, "request_id", requestID, "err", err)
		urlMessage(w, http.StatusBadGateway, "Internal Server Error")
	}
}

// httpEvent is the request as the function gets it: payload format 2.0.
func (a *API) httpEvent(r *http.Request, t httpTarget, body []byte, p auth.Principal, requestID string) lambdaevents.APIGatewayV2HTTPRequest {
	now := time.Now().UTC()
	path := t.path
	ev := lambdaevents.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: t.routeKey, RawPath: path, RawQueryString: r.URL.RawQuery,
		Headers: map[string]string{},
		RequestContext: lambdaevents.APIGatewayV2HTTPRequestContext{
			RouteKey: t.routeKey, Stage: "$default",
			AccountID: "anonymous", RequestID: requestID, APIID: t.apiID,
			DomainName: r.Host, DomainPrefix: t.apiID,
			Time: now.Format("02/Jan/2006:15:04:05 -0700"), TimeEpoch: now.UnixMilli(),
			HTTP: lambdaevents.APIGatewayV2HTTPRequestContextHTTPDescription{
				Method: r.Method, Path: path, Protocol: r.Proto, SourceIP: sourceIP(r), UserAgent: r.UserAgent(),
			},
		},
	}
	for name, values := range r.Header {
		name = strings.ToLower(name)
		switch name {
		case "cookie":
			for _, v := range values {
				for c := range strings.SplitSeq(v, ";") {
					// The console's session is a credential: it stays
					// with Owl like Authorization.
					if c = strings.TrimSpace(c); c != "" && !strings.HasPrefix(c, auth.SessionCookie+"=") {
						ev.Cookies = append(ev.Cookies, c)
					}
				}
			}
		case "authorization", "x-amz-security-token":
			// Credentials stay with Owl, as Lambda keeps them from the function.
		default:
			ev.Headers[name] = strings.Join(values, ",")
		}
	}
	if q := r.URL.Query(); len(q) > 0 {
		ev.QueryStringParameters = map[string]string{}
		for k, v := range q {
			ev.QueryStringParameters[k] = strings.Join(v, ",")
		}
	}
	if len(body) > 0 {
		if textual(r.Header.Get("Content-Type")) {
			ev.Body = string(body)
		} else {
			ev.Body, ev.IsBase64Encoded = base64.StdEncoding.EncodeToString(body), true
		}
	}
	for _, name := range t.params {
		if ev.PathParameters == nil {
			ev.PathParameters = map[string]string{}
		}
		ev.PathParameters[name] = r.PathValue(name)
	}
	if t.authType == registry.AuthIAM {
		ev.RequestContext.AccountID = a.opts.AccountID
		ev.RequestContext.Authorizer = &lambdaevents.APIGatewayV2HTTPRequestContextAuthorizerDescription{
			IAM: &lambdaevents.APIGatewayV2HTTPRequestContextAuthorizerIAMDescription{
				AccessKey: p.ID, AccountID: a.opts.AccountID, CallerID: p.ID, UserID: p.ID,
				UserARN: "arn:aws:iam::" + a.opts.AccountID + ":user/" + p.ID,
			},
		}
	}
	return ev
}

// textual reports whether a body of this content type reaches the
// function as text (else base64), as Lambda decides.
func textual(contentType string) bool {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return contentType == ""
	}
	return strings.HasPrefix(mt, "text/") || strings.HasSuffix(mt, "json") || strings.HasSuffix(mt, "xml") ||
		strings.HasSuffix(mt, "javascript") || mt == "application/x-www-form-urlencoded" || mt == "application/yaml"
}

func sourceIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// writeURLResponse turns a function's result into the HTTP response, by
// payload format 2.0's rules: an object with a statusCode says the status,
// headers, cookies and body (base64 when isBase64Encoded); anything else
// is a 200 whose JSON body is the result.
func writeURLResponse(w http.ResponseWriter, payload []byte) {
	var probe map[string]json.RawMessage
	if json.Unmarshal(payload, &probe) == nil && probe["statusCode"] != nil {
		var res lambdaevents.LambdaFunctionURLResponse
		if err := json.Unmarshal(payload, &res); err != nil || res.StatusCode < 100 || res.StatusCode > 599 {
			urlMessage(w, http.StatusBadGateway, "Internal Server Error")
			return
		}
		body := []byte(res.Body)
		if res.IsBase64Encoded {
			var err error
			if body, err = base64.StdEncoding.DecodeString(res.Body); err != nil {
				urlMessage(w, http.StatusBadGateway, "Internal Server Error")
				return
			}
		}
		h := w.Header()
		setResponseHeaders(h, res.Headers, res.Cookies, "application/json")
		h.Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(res.StatusCode)
		_, _ = w.Write(body)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(payload)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(payload)
}

// setResponseHeaders sets a function's response headers and cookies on
// h, and contentType when they name none.
func setResponseHeaders(h http.Header, headers map[string]string, cookies []string, contentType string) {
	for k, v := range headers {
		h.Set(k, v)
	}
	for _, c := range cookies {
		h.Add("Set-Cookie", c)
	}
	if h.Get("Content-Type") == "" {
		h.Set("Content-Type", contentType)
	}
}

// urlMessage is a function URL's own error answer (Lambda's shape).
func urlMessage(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("x-amzn-ErrorType", http.StatusText(status))
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]string{"Message": msg})
	_, _ = w.Write(b)
}

// allowedOrigin is the Access-Control-Allow-Origin for origin under c,
// "" when c does not allow it.
func allowedOrigin(c *registry.Cors, origin string) string {
	if origin == "" {
		return ""
	}
	for _, o := range c.AllowOrigins {
		if o == "*" {
			if c.AllowCredentials {
				return origin // a credentialed answer may not say *
			}
			return "*"
		}
		if strings.EqualFold(o, origin) {
			return origin
		}
	}
	return ""
}

// preflight answers a CORS preflight request from the URL's settings,
// without running the function.
func preflight(w http.ResponseWriter, r *http.Request, c *registry.Cors) {
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := allowedOrigin(c, r.Header.Get("Origin"))
	method := r.Header.Get("Access-Control-Request-Method")
	if origin == "" || !(slices.Contains(c.AllowMethods, "*") || slices.Contains(c.AllowMethods, method)) {
		w.WriteHeader(http.StatusOK) // no CORS headers: the browser refuses
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Methods", strings.Join(c.AllowMethods, ","))
	if len(c.AllowHeaders) > 0 {
		h.Set("Access-Control-Allow-Headers", strings.Join(c.AllowHeaders, ","))
	}
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if c.MaxAge > 0 {
		h.Set("Access-Control-Max-Age", strconv.Itoa(c.MaxAge))
	}
	w.WriteHeader(http.StatusOK)
}

// cors adds the CORS headers of an actual (not preflight) response.
func cors(w http.ResponseWriter, r *http.Request, c *registry.Cors) {
	if c == nil {
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	origin := allowedOrigin(c, r.Header.Get("Origin"))
	if origin == "" {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	if c.AllowCredentials {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if len(c.ExposeHeaders) > 0 {
		h.Set("Access-Control-Expose-Headers", strings.Join(c.ExposeHeaders, ","))
	}
}
