package callback_test

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/store"
)

// TestSlowReceiverDoesNotHoldUpOthers: a receiver that does not answer
// holds PerHost of the worker's slots, never more, while another
// receiver's callbacks, enqueued after the slow one's, all arrive; the
// slow receiver's surplus waits in the outbox, not attempted, and its
// callbacks go once it answers.
func TestSlowReceiverDoesNotHoldUpOthers(t *testing.T) {
	t.Parallel()
	st := openStore(t, filepath.Join(t.TempDir(), "taskgate.db"))
	defer st.Close()
	const perHost, nSlow, nFast = 2, 30, 20
	var mu sync.Mutex
	inSlow, maxSlow := 0, 0
	release := make(chan struct{})
	slow := newReceiver(t, []string{testSecret.Encode()}, func(w http.ResponseWriter, _ *http.Request) {
		mu.Lock()
		inSlow++
		maxSlow = max(maxSlow, inSlow)
		mu.Unlock()
		<-release
		mu.Lock()
		inSlow--
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	fast := newReceiver(t, []string{testSecret.Encode()}, answer(http.StatusNoContent))
	now := time.Now()
	for i := range nSlow {
		enqueue(t, st, fmt.Sprintf("slow-%d", i), slow.srv.URL, now.Add(-time.Minute))
	}
	for i := range nFast {
		enqueue(t, st, fmt.Sprintf("fast-%d", i), fast.srv.URL, now)
	}
	w := newWorker(t, st, callback.WorkerConfig{Concurrency: 4, PerHost: perHost, PollInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- w.Run(ctx) }()

	waitFor(t, func() bool { return len(fast.got()) == nFast })
	mu.Lock()
	got := maxSlow
	mu.Unlock()
	if n := len(slow.got()); n != perHost || got != perHost {
		t.Fatalf("slow receiver got %d callbacks, at most %d at once; want %d, %d at once", n, got, perHost, perHost)
	}
	for i := range nSlow {
		d := deliveries(t, st, fmt.Sprintf("slow-%d", i))[0]
		if d.State != store.DeliveryPending || d.AttemptsMade != 0 {
			t.Fatalf("slow-%d is %s after %d attempts while the receiver hangs; want pending, none recorded", i, d.State, d.AttemptsMade)
		}
	}

	close(release)
	// The ones in flight and those waiting for a slot (PerHost each) go
	// now; the postponed ones later, at the receiver's pace.
	waitFor(t, func() bool { return len(slow.got()) >= 3*perHost })
	cancel()
	if err := <-stopped; err != nil {
		t.Fatalf("Run = %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got := maxSlow; got != perHost {
		t.Fatalf("slow receiver had %d callbacks at once, want at most %d", got, perHost)
	}
}
