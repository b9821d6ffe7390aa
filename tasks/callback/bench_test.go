package callback_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/store"
)

// benchReceiver accepts everything with 204, as a fast receiver would.
func benchReceiver(b *testing.B) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(srv.Close)
	return srv
}

// barePost is the baseline: an unsigned POST of the same body with a stock
// keep-alive client.
func barePost(b *testing.B, c *http.Client, url string, body []byte) {
	resp, err := c.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
}

// BenchmarkDeliver measures callbacks delivered per second to a local
// receiver, against a bare POST baseline measured in the same run:
//
//   - attempt: one signed attempt (Deliverer.Deliver), sequential,
//     interleaved with bare POSTs; the ratio is the cost of signing, the
//     dial-time guard's client and the bounded read.
//   - outbox: end to end through Worker.Run and a real SQLite outbox
//     (claim, POST, durable record of the attempt), 8 in flight, against 8
//     concurrent bare POSTs.
func BenchmarkDeliver(b *testing.B) {
	srv := benchReceiver(b)
	msg := testMessage(b, srv.URL)
	bare := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.Cleanup(bare.CloseIdleConnections)

	b.Run("attempt", func(b *testing.B) {
		d := newDeliverer(b, callback.Config{})
		ctx := context.Background()
		var sent, base time.Duration
		for b.Loop() {
			t := time.Now()
			barePost(b, bare, srv.URL, msg.Body)
			base += time.Since(t)
			t = time.Now()
			if res := d.Deliver(ctx, msg); !res.Delivered() {
				b.Fatal(res.Err)
			}
			sent += time.Since(t)
		}
		b.ReportMetric(float64(b.N)/sent.Seconds(), "deliveries/s")
		b.ReportMetric(float64(b.N)/base.Seconds(), "bare_posts/s")
		b.ReportMetric(sent.Seconds()/base.Seconds(), "x_bare")
	})

	b.Run("outbox", func(b *testing.B) {
		const inFlight = 64
		st := openStore(b, filepath.Join(b.TempDir(), "bench.db"))
		defer st.Close()
		counted := &countingOutbox{Outbox: st, target: int64(b.N), reached: make(chan struct{})}
		w := newWorker(b, counted, callback.WorkerConfig{Concurrency: inFlight, PollInterval: time.Hour})
		now := time.Now()
		for i := range b.N {
			enqueue(b, st, fmt.Sprintf("run-%d", i), srv.URL, now)
		}

		ctx, cancel := context.WithCancel(context.Background())
		stopped := make(chan error, 1)
		b.ResetTimer()
		start := time.Now()
		go func() { stopped <- w.Run(ctx) }()
		<-counted.reached
		sent := time.Since(start)
		b.StopTimer()
		cancel()
		<-stopped

		start = time.Now()
		var wg sync.WaitGroup
		jobs := make(chan struct{}, b.N)
		for range b.N {
			jobs <- struct{}{}
		}
		close(jobs)
		for range inFlight {
			wg.Go(func() {
				for range jobs {
					barePost(b, bare, srv.URL, msg.Body)
				}
			})
		}
		wg.Wait()
		base := time.Since(start)

		if ds := deliveries(b, st, fmt.Sprintf("run-%d", b.N-1)); ds[0].State != store.DeliveryDelivered {
			b.Fatalf("last delivery is %s", ds[0].State)
		}
		b.ReportMetric(float64(b.N)/sent.Seconds(), "deliveries/s")
		b.ReportMetric(float64(b.N)/base.Seconds(), "bare_posts/s")
		b.ReportMetric(sent.Seconds()/base.Seconds(), "x_bare")
	})
}

// countingOutbox passes everything to the real store and signals when target
// attempts have been recorded: the benchmark's finish line.
type countingOutbox struct {
	callback.Outbox
	n       atomic.Int64
	target  int64
	reached chan struct{}
}

func (c *countingOutbox) RecordDeliveries(ctx context.Context, rs []store.DeliveryRecord, next store.DeliveryClaim) ([]store.Delivery, error) {
	ds, err := c.Outbox.RecordDeliveries(ctx, rs, next)
	n := int64(0)
	for _, r := range rs {
		if !r.Postponed {
			n++
		}
	}
	if now := c.n.Add(n); now >= c.target && now-n < c.target {
		close(c.reached)
	}
	return ds, err
}
