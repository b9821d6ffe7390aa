package queue

import (
	"context"
	"net/http"
	"net/url"
	"path"
	"strings"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/go-chi/chi/v5"
)

// fal's own URL layout, so that fal's clients work unchanged. fal serves
// its queue on its own host (https://queue.fal.run/{owner}/{app}/…); here
// the same layout sits under /fal of the environment:
//
//	POST /fal/{owner}/{app}[/{path...}]           submit
//	GET  /fal/{owner}/{app}/requests/{id}/status   status (?logs=1)
//	GET  /fal/{owner}/{app}/requests/{id}/status/stream
//	GET  /fal/{owner}/{app}/requests/{id}          result
//	PUT  /fal/{owner}/{app}/requests/{id}/cancel   cancel
//
// {owner}/{app} is fal's app id and names nothing here: the environment is
// the one the URL is on, and the request is found by its id and owner.
// fal's client builds every URL on fal's host (fal-js
// libs/client/src/request.ts, buildUrl); its documented way to send them
// elsewhere is a proxy (config({proxyUrl})), which sends each request to
// the proxy URL with the fal URL in x-fal-target-url
// (libs/client/src/middleware.ts, withProxy). /fal itself is that proxy:
//
//	fal.config({ credentials: token, proxyUrl: { url: "https://host/gen/fal", when: "always" } })
//
// The headers: Authorization: Key <token> is verified as a bearer token
// (middleware.KeyExtractor); x-fal-queue-priority and
// x-fal-request-timeout are X-Queue-Priority and X-Queue-Start-Timeout;
// ?fal_webhook= is ?webhook=. Answers carry x-fal-request-id, and errors
// come as application/json when problem+json is not accepted
// (the one error negotiation of internal/edge), as fal's client reads no other type.
const (
	falRoot      = "/fal"
	falAppRoute  = falRoot + "/{owner}/{app}"
	falTargetHdr = "X-Fal-Target-Url"
	falIDHeader  = "X-Fal-Request-Id"
	// falQueueHost is the host of fal's queue URLs, the only one the
	// proxy serves.
	falQueueHost = "queue.fal.run"
)

// FalApp is fal's app id in a URL.
type FalApp struct {
	Owner string `path:"owner" maxLength:"128" example:"my-team" doc:"fal's app owner; any value."`
	App   string `path:"app" maxLength:"128" example:"gen" doc:"fal's app alias; any value."`

	base string // scheme://host of the request
}

// Resolve keeps where the caller reached the queue, for absolute URLs.
func (in *FalApp) Resolve(ctx huma.Context) []error {
	in.base = requestBase(ctx)
	return nil
}

// requestBase is scheme://host as the caller reached the server. The
// scheme follows X-Forwarded-Proto as a TLS-terminating proxy sets it:
// the URLs go back to the same caller only, so a forged value misleads
// nobody else.
func requestBase(ctx huma.Context) string {
	scheme := "http"
	fp, _, _ := strings.Cut(ctx.Header("X-Forwarded-Proto"), ",")
	if ctx.TLS() != nil || strings.EqualFold(strings.TrimSpace(fp), "https") {
		scheme = "https"
	}
	return scheme + "://" + ctx.Host()
}

// falURLs are a request's URLs in fal's layout, absolute.
func (q *Queue) falURLs(app *FalApp, id string) (status, response, cancel string) {
	base := app.base + path.Join("/", q.settings.PathPrefix, falRoot,
		url.PathEscape(app.Owner), url.PathEscape(app.App), "requests", id)
	return base + "/status", base, base + "/cancel"
}

// FalSubmitInput is POST /fal/{owner}/{app}[/{path...}].
type FalSubmitInput struct {
	FalApp
	Priority     string  `header:"X-Fal-Queue-Priority" enum:"normal,low" default:"normal" doc:"low runs after every normal request waiting with it."`
	StartTimeout float64 `header:"X-Fal-Request-Timeout" minimum:"0" example:"30" doc:"Seconds the request may wait to start; past them it completes with error START_TIMEOUT."`
	Webhook      string  `query:"fal_webhook" maxLength:"2048" doc:"URL that gets a signed callback (Standard Webhooks) when the request completes."`

	stored Request
}

// Resolve captures the request to queue: the path after {owner}/{app}.
func (in *FalSubmitInput) Resolve(ctx huma.Context) []error {
	in.base = requestBase(ctx)
	var errs []error
	u := ctx.URL()
	in.stored, errs = capture(ctx, falQueuedPath(u.EscapedPath()), "fal_webhook")
	return errs
}

// falQueuedPath is the escaped path after /fal/{owner}/{app}, "/" when
// none.
func falQueuedPath(escaped string) string {
	rest := strings.TrimPrefix(escaped, falRoot+"/")
	parts := strings.SplitN(rest, "/", 3)
	if len(parts) < 3 {
		return "/"
	}
	return "/" + parts[2]
}

// FalSubmitted is fal's answer to a submit (InQueueQueueStatus).
type FalSubmitted struct {
	RequestID     string `json:"request_id"`
	Status        string `json:"status" example:"IN_QUEUE"`
	StatusURL     string `json:"status_url" format:"uri"`
	ResponseURL   string `json:"response_url" format:"uri"`
	CancelURL     string `json:"cancel_url" format:"uri"`
	QueuePosition int    `json:"queue_position" doc:"Runs ahead of this request; 0 when next."`
}

// FalSubmitOutput is the response of a fal submit.
type FalSubmitOutput struct {
	RequestID string `header:"X-Fal-Request-Id"`
	Body      FalSubmitted
}

// FalRequestInput names a request in fal's layout.
type FalRequestInput struct {
	FalApp
	RequestPath
}

// FalStatusInput is GET /fal/{owner}/{app}/requests/{id}/status[/stream].
type FalStatusInput struct {
	FalRequestInput
	Logs bool `query:"logs" doc:"Include the lines the replay logged (1 or true)."`
}

// FalStatus is a status in fal's layout, with absolute URLs.
type FalStatus struct {
	Status
	StatusURL string `json:"status_url" format:"uri"`
	CancelURL string `json:"cancel_url" format:"uri"`
}

// FalStatusOutput is the response of a fal status.
type FalStatusOutput struct {
	Status    int
	RequestID string `header:"X-Fal-Request-Id"`
	Body      FalStatus
}

// FalCancelOutput is the response of a fal cancel.
type FalCancelOutput struct {
	RequestID string `header:"X-Fal-Request-Id"`
	Body      Cancelled
}

// FalProxyInput is a request through fal's proxy protocol.
type FalProxyInput struct {
	Target string `header:"X-Fal-Target-Url" required:"true" maxLength:"4096" example:"https://queue.fal.run/my-team/gen/generate" doc:"The fal queue URL the client meant; its path and query are served here."`
}

func (q *Queue) registerFal(api huma.API) {
	tags := []string{Tag}
	for _, route := range []string{falAppRoute, falAppRoute + "/*"} {
		op := huma.Operation{
			OperationID: "fal-submit", Method: http.MethodPost, Path: route, Tags: tags,
			DefaultStatus: http.StatusAccepted,
			Summary:       "Queue a request (fal's layout)",
			Description:   "POST /queue/submit in fal's layout: the path after {owner}/{app} is the app's route.",
		}
		if route != falAppRoute {
			op.OperationID, op.Hidden = "fal-submit-path", true
		}
		huma.Register(api, op, q.falSubmit)
	}
	huma.Register(api, huma.Operation{
		OperationID: "fal-status", Method: http.MethodGet, Path: falAppRoute + "/requests/{id}/status", Tags: tags,
		Summary: "Get a queued request's status (fal's layout)",
	}, q.falStatus)
	huma.Register(api, huma.Operation{
		OperationID: "fal-status-stream", Method: http.MethodGet, Path: falAppRoute + "/requests/{id}/status/stream", Tags: tags,
		Summary: "Stream a queued request's status (fal's layout)",
		Responses: map[string]*huma.Response{"200": {
			Description: "An event stream of Status objects.",
			Content:     map[string]*huma.MediaType{"text/event-stream": {Schema: &huma.Schema{Type: huma.TypeString}}},
		}},
	}, q.falStatusStream)
	huma.Register(api, huma.Operation{
		OperationID: "fal-response", Method: http.MethodGet, Path: falAppRoute + "/requests/{id}", Tags: tags,
		Summary:   "Get a queued request's response (fal's layout)",
		Responses: map[string]*huma.Response{"200": {Description: "The recorded response, as the handler wrote it."}},
	}, q.falResponse)
	huma.Register(api, huma.Operation{
		OperationID: "fal-cancel", Method: http.MethodPut, Path: falAppRoute + "/requests/{id}/cancel", Tags: tags,
		Summary: "Cancel a queued request (fal's layout)", DefaultStatus: http.StatusAccepted,
	}, q.falCancel)
	for _, method := range []string{http.MethodGet, http.MethodPost, http.MethodPut} {
		huma.Register(api, huma.Operation{
			OperationID: "fal-proxy-" + strings.ToLower(method), Method: method, Path: falRoot, Tags: tags,
			Summary: "fal's client proxy",
			Description: "The proxy of fal's client (config({proxyUrl})): serves the request named by X-Fal-Target-Url, " +
				"a URL on " + falQueueHost + ", as the same request to that path under /fal.",
			Responses: map[string]*huma.Response{"200": {Description: "The answer of the route in fal's layout."}},
		}, q.falProxy)
	}
}

func (q *Queue) falSubmit(ctx context.Context, in *FalSubmitInput) (*FalSubmitOutput, error) {
	out, err := q.submit(ctx, &SubmitInput{
		Priority: in.Priority, StartTimeout: in.StartTimeout, Webhook: in.Webhook, stored: in.stored,
	})
	if err != nil {
		return nil, err
	}
	id := out.Body.RequestID
	status, response, cancel := q.falURLs(&in.FalApp, id)
	body := FalSubmitted{RequestID: id, Status: StatusInQueue, StatusURL: status, ResponseURL: response, CancelURL: cancel}
	if deps, _ := q.current(); deps != nil {
		if pos, _ := deps.Dispatcher.QueuePosition(id); pos > 0 {
			body.QueuePosition = pos - 1
		}
	}
	return &FalSubmitOutput{RequestID: id, Body: body}, nil
}

func (q *Queue) falStatus(ctx context.Context, in *FalStatusInput) (*FalStatusOutput, error) {
	out, err := q.status(ctx, &StatusInput{RequestPath: in.RequestPath, Logs: in.Logs})
	if err != nil {
		return nil, err
	}
	status, response, cancel := q.falURLs(&in.FalApp, in.ID)
	s := FalStatus{Status: out.Body, StatusURL: status, CancelURL: cancel}
	s.ResponseURL = response
	return &FalStatusOutput{Status: out.Status, RequestID: in.ID, Body: s}, nil
}

func (q *Queue) falStatusStream(ctx context.Context, in *FalStatusInput) (*huma.StreamResponse, error) {
	out, err := q.statusStream(ctx, &StatusInput{RequestPath: in.RequestPath, Logs: in.Logs})
	if err != nil {
		return nil, err
	}
	return withRequestID(out, in.ID), nil
}

func (q *Queue) falResponse(ctx context.Context, in *FalRequestInput) (*huma.StreamResponse, error) {
	out, err := q.response(ctx, &in.RequestPath)
	if err != nil {
		return nil, err
	}
	return withRequestID(out, in.ID), nil
}

func (q *Queue) falCancel(ctx context.Context, in *FalRequestInput) (*FalCancelOutput, error) {
	out, err := q.cancel(ctx, &in.RequestPath)
	if err != nil {
		return nil, err
	}
	return &FalCancelOutput{RequestID: in.ID, Body: out.Body}, nil
}

// withRequestID sets x-fal-request-id before the streamed body, where
// fal's client reads it (libs/client/src/response.ts, streaming.ts).
func withRequestID(out *huma.StreamResponse, id string) *huma.StreamResponse {
	body := out.Body
	out.Body = func(ctx huma.Context) {
		ctx.SetHeader(falIDHeader, id)
		body(ctx)
	}
	return out
}

// falProxy serves a request of fal's proxy protocol: the same request,
// authenticated already, routed again through the environment to the
// target's path under /fal. Only fal's queue host is served: a target
// elsewhere would be a request this server cannot answer as fal would.
func (q *Queue) falProxy(_ context.Context, in *FalProxyInput) (*huma.StreamResponse, error) {
	target, err := url.Parse(in.Target)
	if err != nil || target.Scheme != "https" || !strings.EqualFold(target.Host, falQueueHost) || target.User != nil {
		return nil, huma.Error400BadRequest("X-Fal-Target-Url must be a URL on https://" + falQueueHost)
	}
	if strings.Count(strings.Trim(target.Path, "/"), "/") < 1 {
		return nil, huma.Error400BadRequest("X-Fal-Target-Url must name an app, /{owner}/{app}")
	}
	_, app := q.current()
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		r, w := humachi.Unwrap(hctx)
		// A fresh route context: the router routes by the new path, and
		// none of this route's parameters leak into the target's.
		ctx := context.WithValue(r.Context(), chi.RouteCtxKey, chi.NewRouteContext())
		r2 := r.Clone(ctx)
		r2.Header.Del(falTargetHdr)
		r2.URL.Path = falRoot + target.Path
		r2.URL.RawPath = ""
		if target.RawPath != "" {
			r2.URL.RawPath = falRoot + target.RawPath
		}
		r2.URL.RawQuery = target.RawQuery
		r2.RequestURI = r2.URL.RequestURI()
		app.ServeHTTP(w, r2)
	}}, nil
}
