package callback_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
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

// BenchmarkDeliver measures one signed attempt (Deliverer.Deliver) to a
// local receiver, sequential, interleaved with bare POSTs of the same
// body: the ratio is the cost of signing, the dial-time guard's client and
// the bounded read. BenchmarkCallbacks measures the same attempts end to
// end through the outbox.
func BenchmarkDeliver(b *testing.B) {
	srv := benchReceiver(b)
	msg := testMessage(b, srv.URL)
	bare := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	b.Cleanup(bare.CloseIdleConnections)
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
}

// countingOutbox passes everything to the real store and signals when
// target attempts have been recorded: the benchmark's finish line.
// Attempts that did not deliver count in failed.
type countingOutbox struct {
	callback.Outbox
	n, failed atomic.Int64
	target    int64
	reached   chan struct{}
}

func (c *countingOutbox) RecordDeliveries(ctx context.Context, rs []store.DeliveryRecord, next store.DeliveryClaim) ([]store.Delivery, error) {
	ds, err := c.Outbox.RecordDeliveries(ctx, rs, next)
	n := int64(0)
	for _, r := range rs {
		if r.Postponed {
			continue
		}
		if r.Attempt.StatusCode/100 != 2 {
			c.failed.Add(1)
		}
		n++
	}
	if err == nil && n > 0 {
		if now := c.n.Add(n); now >= c.target && now-n < c.target {
			close(c.reached)
		}
	}
	return ds, err
}
