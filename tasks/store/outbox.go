package store

import (
	"encoding/json"
	"time"
)

// ClaimTTL is how long a claimed delivery stays invisible to other workers.
const ClaimTTL = time.Minute

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Webhook event types, as Replicate's webhook_events_filter names them.
const (
	WebhookStart     = "start"
	WebhookCompleted = "completed"
)

// NewDelivery is a webhook callback to send.
type NewDelivery struct {
	// ID is the stable webhook-id sent with every attempt; empty makes one.
	ID  string
	Run string
	URL string
	// Event is WebhookStart or WebhookCompleted.
	Event string
	// Payload is the JSON of the run when the event happened; the delivery
	// worker wraps it as {type, timestamp, data} and signs it.
	Payload   json.RawMessage
	CreatedAt time.Time
}

// Delivery is one webhook callback in the outbox.
type Delivery struct {
	NewDelivery
	// Seq numbers the run's deliveries from 1, in the order they were
	// enqueued, which is the order they are delivered in.
	Seq   int64
	State string
	// TraceParent is the W3C traceparent of the run's submit, which the
	// callback carries; empty when it was not traced.
	TraceParent   string
	NextAttemptAt time.Time
	// AttemptsMade is how many attempts were recorded before this one
	// (ClaimDueDeliveries and ListDeliveries set it): the step of the
	// retry plan, read without the attempts themselves.
	AttemptsMade int
	Attempts     []DeliveryAttempt
}

// DeliveryAttempt is the outcome of one POST of a delivery.
type DeliveryAttempt struct {
	At time.Time `json:"at"`
	// StatusCode is the receiver's HTTP status; zero when no response.
	StatusCode int    `json:"status_code,omitempty"`
	Error      string `json:"error,omitempty"`
	// Done ends the delivery: delivered when StatusCode is 2xx, else failed.
	Done bool `json:"done"`
	// NextAttemptAt, when not Done, is when to try again.
	NextAttemptAt time.Time `json:"next_attempt_at,omitzero"`
}

// DeliveryRecord is what a worker writes back of a delivery it claimed:
// the outcome of one attempt, or, with Postponed, a new due time without
// an attempt.
type DeliveryRecord struct {
	ID      string
	Attempt DeliveryAttempt
	// Postponed records no attempt: the worker claimed the delivery but
	// did not send it (its receiver had as many callbacks in flight as
	// the worker allows), and gives it back due at
	// Attempt.NextAttemptAt. Its attempts and state stay as they were.
	Postponed bool
}

// DeliveryClaim asks RecordDeliveries to claim, after its records, up to
// Limit deliveries due at Now; a zero Limit claims none.
type DeliveryClaim struct {
	Now   time.Time
	Limit int
}
