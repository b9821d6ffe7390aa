package callback

import (
	"context"
	"log/slog"
	"time"

	"github.com/taskgate/taskgate/internal/backoff"
	"github.com/taskgate/taskgate/tasks/store"
)

// recorder is the worker's one way to write to the outbox. It writes
// what attempts end with in groups: the records that arrive while one
// transaction commits share the next one, and its fsync, as the
// dispatcher's submits and phase changes do. The loop's next claim rides
// in the same transaction (claim, claimed), so a busy worker commits
// about once per group of attempts, records and claim together. One
// goroutine (run) writes; close ends it once every record queued before
// has been written.
type recorder struct {
	outbox Outbox
	obs    Observer
	// fails logs the store's refusals of records, once per change of
	// state; a refused record's delivery is claimed again after
	// store.ClaimTTL (at least once).
	fails *backoff.Failures
	q     chan recordReq
	// claims takes the loop's claim, at most one at a time; claimed
	// answers it. replies takes what the loop says to an answer: its
	// next claim, or none (a zero Limit).
	claims  chan store.DeliveryClaim
	claimed chan claimed
	replies chan store.DeliveryClaim
	ended   chan struct{}
}

type recordReq struct {
	r store.DeliveryRecord
	// done hears the outcome; nil for a postponement, which nobody
	// waits for.
	done chan error
}

// claimed is the answer to a claim.
type claimed struct {
	ds  []store.Delivery
	err error
}

// maxRecordBatch bounds one group commit, but for the records that come
// while the loop takes a claim's deliveries (recorder.answer): those are
// bounded by what the worker has claimed.
const maxRecordBatch = 512

// recordTimeout bounds the write of one group.
const recordTimeout = 10 * time.Second

func newRecorder(outbox Outbox, obs Observer, fails *backoff.Failures) *recorder {
	r := &recorder{outbox: outbox, obs: obs, fails: fails, q: make(chan recordReq, 1024),
		claims: make(chan store.DeliveryClaim, 1), claimed: make(chan claimed, 1),
		replies: make(chan store.DeliveryClaim, 1), ended: make(chan struct{})}
	go r.run()
	return r
}

// record writes rec with the records of concurrent attempts and returns
// once it is durable.
func (r *recorder) record(rec store.DeliveryRecord) error {
	done := make(chan error, 1)
	r.q <- recordReq{r: rec, done: done}
	return <-done
}

// postpone queues rec for the next group without waiting: if it is lost,
// the delivery's claim expires and it is due then instead.
func (r *recorder) postpone(rec store.DeliveryRecord) {
	r.q <- recordReq{r: rec}
}

// claim asks for c with the next group; the answer comes on claimed.
// The caller has no other claim outstanding.
func (r *recorder) claim(c store.DeliveryClaim) { r.claims <- c }

// answer replies to the answer of a claim, as the caller must once it
// has taken the deliveries: with its next claim, which then rides in the
// very next group, or with a zero Limit for none. The recorder waits for
// it before it writes again; else the records that arrived meanwhile
// would go alone, in a transaction and an fsync of their own, and the
// claim one transaction later.
func (r *recorder) answer(c store.DeliveryClaim) { r.replies <- c }

// close writes what is queued and stops the recorder. No claim may be
// outstanding.
func (r *recorder) close() {
	close(r.q)
	<-r.ended
}

func (r *recorder) run() {
	defer close(r.ended)
	batch := make([]recordReq, 0, maxRecordBatch)
	recs := make([]store.DeliveryRecord, 0, maxRecordBatch)
	// q is r.q until it is closed; answered: a claim was answered, and
	// the loop's reply is awaited.
	q, answered := r.q, false
	for {
		batch = batch[:0]
		var next store.DeliveryClaim
		if answered {
			// Records keep coming while the loop takes the deliveries
			// (its postponements among them): they are taken here, so that
			// nobody waits on a full queue, and go with the reply's claim.
			for answered {
				select {
				case next = <-r.replies:
					answered = false
				case req, ok := <-q:
					if !ok {
						q = nil
						continue
					}
					batch = append(batch, req)
				}
			}
		} else {
			select {
			case req, ok := <-q:
				if !ok {
					return
				}
				batch = append(batch, req)
			case next = <-r.claims:
			}
		}
		if q != nil {
			batch = r.drain(batch)
		}
		if next.Limit == 0 {
			select {
			case next = <-r.claims:
			default:
			}
		}
		if len(batch) > 0 || next.Limit > 0 {
			recs = recs[:0]
			for _, req := range batch {
				recs = append(recs, req.r)
			}
			ds, err := r.write(recs, next)
			for _, req := range batch {
				if req.done != nil {
					req.done <- err
				}
			}
			if next.Limit > 0 {
				r.claimed <- claimed{ds: ds, err: err}
				answered = true
			}
		}
		if q == nil && !answered {
			return
		}
	}
}

// drain adds to batch the records queued now, up to maxRecordBatch.
func (r *recorder) drain(batch []recordReq) []recordReq {
	for len(batch) < maxRecordBatch {
		select {
		case req, ok := <-r.q:
			if !ok {
				return batch
			}
			batch = append(batch, req)
		default:
			return batch
		}
	}
	return batch
}

func (r *recorder) write(recs []store.DeliveryRecord, next store.DeliveryClaim) ([]store.Delivery, error) {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	start := time.Now()
	ds, err := r.outbox.RecordDeliveries(ctx, recs, next)
	if err == nil && len(recs) > 0 {
		r.obs.Committed("outbox", len(recs), time.Since(start))
	}
	if len(recs) > 0 {
		r.fails.Report(ctx, err, slog.Int("records", len(recs)))
	}
	return ds, err
}
