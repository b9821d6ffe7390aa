package edge

import (
	"context"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/middleware"
)

// KeepAlive is how often an idle event stream sends a comment, so proxies
// and clients do not time it out.
const KeepAlive = 15 * time.Second

// MaxStream bounds how long one event stream lasts: the caller's
// credentials were checked when it opened, so a session signed out (or a
// token revoked) would otherwise keep streaming for as long as the run
// runs, for ever for a held replica. At the bound the stream ends without
// its end event; browsers' EventSource and the Go client reconnect after
// the retry delay with Last-Event-ID, and their credentials are checked
// again.
const MaxStream = 5 * time.Minute

// BoundStream returns the context of an event stream opened in ctx: it
// ends after MaxStream, or when the caller's identity expires (a
// session's end, a token's exp), whichever comes first.
func BoundStream(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline := time.Now().Add(MaxStream)
	if id, ok := middleware.IdentityFromContext(ctx); ok && !id.Expiry.IsZero() && id.Expiry.Before(deadline) {
		deadline = id.Expiry
	}
	return context.WithDeadline(ctx, deadline)
}

// OpenEventStream starts a Server-Sent Events response (no caching, no
// proxy buffering) and returns its writer and a flush for each event.
func OpenEventStream(hctx huma.Context) (io.Writer, func()) {
	hctx.SetHeader("Content-Type", "text/event-stream")
	hctx.SetHeader("Cache-Control", "no-cache")
	hctx.SetHeader("X-Accel-Buffering", "no")
	hctx.SetStatus(http.StatusOK)
	w := hctx.BodyWriter()
	return w, func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
}

// EventStreamSchema documents a text/event-stream response whose events
// are named by the keys of events and carry the JSON of their values'
// types, as huma's sse package would (sse.Register): an array of oneOf
// event objects. Routes that answer errors before the stream starts
// register themselves and use this for the schema alone.
func EventStreamSchema(api huma.API, events map[string]any) *huma.Schema {
	reg := api.OpenAPI().Components.Schemas
	names := slices.Sorted(maps.Keys(events))
	variants := make([]*huma.Schema, 0, len(names))
	for _, name := range names {
		variants = append(variants, &huma.Schema{
			Title: "Event " + name,
			Type:  huma.TypeObject,
			Properties: map[string]*huma.Schema{
				"id":    {Type: huma.TypeInteger, Description: "The event id; send it as Last-Event-ID to resume after it."},
				"event": {Type: huma.TypeString, Description: "The event name.", Enum: []any{name}},
				"data":  reg.Schema(reflect.TypeOf(events[name]), true, name),
				"retry": {Type: huma.TypeInteger, Description: "The reconnection time in milliseconds."},
			},
			Required: []string{"data", "event"},
		})
	}
	items := &huma.Schema{OneOf: variants}
	if len(variants) == 1 {
		items = variants[0]
	}
	return &huma.Schema{
		Title:       "Server-Sent Events",
		Description: "Each item is one possible event, serialized as UTF-8 text by the SSE specification.",
		Type:        huma.TypeArray,
		Items:       items,
	}
}
