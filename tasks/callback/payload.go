package callback

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Payload is the JSON body of every callback, in the shape the Standard
// Webhooks specification recommends: {"type", "timestamp", "data"}.
type Payload struct {
	// Type names the event, e.g. TypeRunCompleted.
	Type string `json:"type"`
	// Sequence numbers the callbacks of one run from 1, in the order they
	// are sent: the next one goes only once this one was delivered or
	// given up, so a receiver never sees run.completed before the
	// run.started of the same run. Omitted (zero) outside a run's outbox.
	Sequence int64 `json:"sequence,omitempty"`
	// Timestamp is when the event happened (not when this attempt was
	// sent), so every attempt of one message has the same body.
	Timestamp time.Time `json:"timestamp"`
	// Data is the subject of the event: the run, or the queue request.
	Data any `json:"data"`
}

// Payload types of run callbacks.
const (
	TypeRunStarted   = "run.started"
	TypeRunCompleted = "run.completed"
)

// Events is a set of callback events a caller subscribed to, as Replicate's
// webhook_events_filter: "start" (the run began running) and "completed"
// (it reached a terminal phase, whatever the outcome).
type Events uint8

// The events. Their names are EventNameStart and EventNameCompleted.
const (
	EventStart Events = 1 << iota
	EventCompleted

	// DefaultEvents is the filter when the caller gives none.
	DefaultEvents = EventCompleted
	allEvents     = EventStart | EventCompleted
)

// Event names, as they appear in the webhook_events_filter query parameter
// and in the store's outbox.
const (
	EventNameStart     = "start"
	EventNameCompleted = "completed"
)

// ErrUnknownEvent is returned by ParseEvents for a name it does not know.
var ErrUnknownEvent = errors.New("callback: unknown webhook event")

// maxEventNames bounds the work of ParseEvents on a hostile query.
const maxEventNames = 16

// ParseEvents reads a webhook_events_filter: names, each possibly a
// comma-separated list ("start,completed" and ["start", "completed"] are the
// same). No names means DefaultEvents. Repeats are harmless.
func ParseEvents(names []string) (Events, error) {
	if len(names) > maxEventNames {
		return 0, fmt.Errorf("%w: too many names", ErrUnknownEvent)
	}
	var ev Events
	for _, list := range names {
		for name := range strings.SplitSeq(list, ",") {
			switch strings.TrimSpace(name) {
			case EventNameStart:
				ev |= EventStart
			case EventNameCompleted:
				ev |= EventCompleted
			case "":
			default:
				return 0, fmt.Errorf("%w %q (want %q or %q)", ErrUnknownEvent, truncateName(name), EventNameStart, EventNameCompleted)
			}
		}
	}
	if ev == 0 {
		return DefaultEvents, nil
	}
	return ev, nil
}

func truncateName(s string) string {
	if len(s) > 32 {
		return s[:32] + "…"
	}
	return s
}

// Has reports whether every event of x is in e.
func (e Events) Has(x Events) bool { return x != 0 && e&x == x }

// Names returns the event names of e in a fixed order, the form stored with a
// run (tasks.Run.WebhookEvents).
func (e Events) Names() []string {
	var out []string
	if e.Has(EventStart) {
		out = append(out, EventNameStart)
	}
	if e.Has(EventCompleted) {
		out = append(out, EventNameCompleted)
	}
	return out
}

// String joins Names with commas.
func (e Events) String() string { return strings.Join(e.Names(), ",") }

// PayloadType maps an outbox event name to the payload type of a run
// callback: "start" is TypeRunStarted, "completed" TypeRunCompleted. Any
// other name is taken as a full type already (e.g. "request.completed"
// for queue requests) and returned unchanged.
func PayloadType(event string) string {
	switch event {
	case EventNameStart:
		return TypeRunStarted
	case EventNameCompleted:
		return TypeRunCompleted
	}
	return event
}

// EncodePayload returns the callback body for an event of type typ that
// happened at at, with data already encoded as JSON (the run as the store
// kept it). The result depends only on its arguments, so a message re-sent
// after a restart is byte-identical.
func EncodePayload(typ string, at time.Time, data json.RawMessage) ([]byte, error) {
	return EncodeSequencedPayload(typ, 0, at, data)
}

// EncodeSequencedPayload is EncodePayload with the callback's Sequence
// within its run, as the Worker sends a delivery of the outbox.
func EncodeSequencedPayload(typ string, seq int64, at time.Time, data json.RawMessage) ([]byte, error) {
	if len(data) == 0 {
		data = json.RawMessage("null")
	}
	if !json.Valid(data) {
		return nil, fmt.Errorf("callback: payload data of %s is not valid JSON", typ)
	}
	return json.Marshal(Payload{Type: typ, Sequence: seq, Timestamp: at.UTC(), Data: data})
}
