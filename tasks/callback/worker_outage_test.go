package callback_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/store"
)

// refusingOutbox refuses writes while down, as a store on a full disk.
type refusingOutbox struct {
	callback.Outbox
	down   atomic.Bool
	claims atomic.Int64
}

func (o *refusingOutbox) RecordDeliveries(ctx context.Context, rs []store.DeliveryRecord, next store.DeliveryClaim) ([]store.Delivery, error) {
	if next.Limit > 0 {
		o.claims.Add(1)
	}
	if o.down.Load() {
		return nil, fmt.Errorf("claim deliveries: %w: database or disk is full", store.ErrDiskFull)
	}
	return o.Outbox.RecordDeliveries(ctx, rs, next)
}

type countingHandler struct{ n atomic.Int64 }

func (h *countingHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *countingHandler) Handle(context.Context, slog.Record) error {
	h.n.Add(1)
	return nil
}
func (h *countingHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *countingHandler) WithGroup(string) slog.Handler      { return h }

// TestClaimRefusalsBackOff: while the store refuses claims, the worker
// waits longer after each (wakes do not hurry it) and logs once, instead
// of claiming at every poll and wake; when the store is back it delivers.
func TestClaimRefusalsBackOff(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "outbox.db"))
	defer st.Close()
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(204))
	outbox := &refusingOutbox{Outbox: st}
	outbox.down.Store(true)
	logs := &countingHandler{}
	w := newWorker(t, outbox, callback.WorkerConfig{PollInterval: 10 * time.Millisecond, Logger: slog.New(logs)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() { cancel(); <-done }()

	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		w.Notify()
		time.Sleep(time.Millisecond)
	}
	claims, lines := outbox.claims.Load(), logs.n.Load()
	outbox.down.Store(false)
	t.Logf("1 s of refused claims: %d claims, %d log lines", claims, lines)
	if claims > 15 || lines > 2 {
		t.Fatalf("%d claims and %d log lines in 1 s of refusals", claims, lines)
	}
	enqueue(t, st, "run-after", rcv.srv.URL+"/hook", time.Now())
	waitFor(t, func() bool { return len(rcv.got()) == 1 })
}
