package edge

import (
	"github.com/danielgtaylor/huma/v2"

	"github.com/taskgate/taskgate/tasks/callback"
)

// WebhookParams checks a callback URL and its event filter, as run-task,
// queue submits and environments.Submit all take them, and returns the
// filter's normalized event names (nil without a URL: there is nothing to
// filter). Errors are 422s naming the query parameter. Where the URL may
// point is checked again at dial time by the delivery client's SSRF guard.
func WebhookParams(url string, events []string) ([]string, error) {
	if url == "" {
		return nil, nil
	}
	if err := CheckText("query.webhook", url); err != nil {
		return nil, err
	}
	if err := callback.ValidateURL(url); err != nil {
		return nil, huma.Error422UnprocessableEntity("invalid webhook", &huma.ErrorDetail{
			Message: err.Error(), Location: "query.webhook",
		})
	}
	ev, err := callback.ParseEvents(events)
	if err != nil {
		return nil, huma.Error422UnprocessableEntity("invalid webhook_events_filter", &huma.ErrorDetail{
			Message: err.Error(), Location: "query.webhook_events_filter",
		})
	}
	return ev.Names(), nil
}
