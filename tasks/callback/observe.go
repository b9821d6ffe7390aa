package callback

import (
	"time"

	"github.com/taskgate/taskgate/tasks/store"
)

// Observer hears what the delivery worker does, for metrics: framework
// wires one to Prometheus, so that this package never imports it.
// Methods must return quickly.
type Observer interface {
	// Delivered: one attempt ended with outcome (DeliveryOK,
	// DeliveryRetried, DeliveryGivenUp) after d, the POST's time.
	Delivered(outcome string, d time.Duration)
	// Committed: writer ("outbox") recorded n attempts in one transaction
	// that took d.
	Committed(writer string, n int, d time.Duration)
}

// Outcomes of a delivery attempt, as Observer.Delivered hears them.
const (
	DeliveryOK      = "delivered"
	DeliveryRetried = "retried"
	DeliveryGivenUp = "failed"
)

type nopObserver struct{}

func (nopObserver) Delivered(string, time.Duration)      {}
func (nopObserver) Committed(string, int, time.Duration) {}

// deliveryOutcome names what attempt a did to its delivery.
func deliveryOutcome(a store.DeliveryAttempt) string {
	switch {
	case !a.Done:
		return DeliveryRetried
	case a.Error == "" && a.StatusCode >= 200 && a.StatusCode < 300:
		return DeliveryOK
	}
	return DeliveryGivenUp
}
