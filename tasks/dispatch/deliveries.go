package dispatch

import (
	"context"

	"github.com/taskgate/taskgate/tasks/store"
)

// Deliveries returns the webhook callbacks of a run with their attempts
// (status code, time, error), so callers can see what was delivered.
func (d *Dispatcher) Deliveries(ctx context.Context, name string) ([]store.Delivery, error) {
	ds, err := d.st.ListDeliveries(ctx, name)
	if err != nil {
		return nil, mapErr(err)
	}
	return ds, nil
}
