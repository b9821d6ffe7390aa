package middleware_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/taskgate/taskgate/middleware"
)

func TestLimiterAcquireHonorsContext(t *testing.T) {
	t.Parallel()
	l := middleware.NewLimiter(1, time.Minute)
	release, err := l.Acquire(t.Context())
	noErr(t, err)

	// A waiter leaves when its context is cancelled, with the cause.
	stop := errors.New("replay aborted")
	ctx, cancel := context.WithCancelCause(t.Context())
	done := make(chan error, 1)
	go func() {
		r, err := l.Acquire(ctx)
		if r != nil {
			r()
			err = fmt.Errorf("got a slot that was taken (err %w)", err)
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Acquire returned while the only slot was taken: %v", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel(stop)
	select {
	case err := <-done:
		if !errors.Is(err, stop) {
			t.Fatalf("Acquire: %v, want the context's cause %v", err, stop)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire ignored the cancelled context")
	}

	// A deadline ends the wait too.
	short, cancelShort := context.WithTimeout(t.Context(), 20*time.Millisecond)
	defer cancelShort()
	if _, err := l.Acquire(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Acquire past its deadline: %v", err)
	}

	// A context already done takes no slot, even a free one.
	release()
	gone, cancelGone := context.WithCancel(t.Context())
	cancelGone()
	if r, err := l.Acquire(gone); r != nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("Acquire with a done context: release %v, err %v", r != nil, err)
	}
	r, ok := l.TryAcquire()
	equal(t, true, ok, "the waiters that left hold no slot")
	r()
}

func TestLimiterReleasesExactlyOnce(t *testing.T) {
	t.Parallel()
	l := middleware.NewLimiter(2, 0)
	first, err := l.Acquire(t.Context())
	noErr(t, err)
	second, ok := l.TryAcquire()
	equal(t, true, ok)
	_, ok = l.TryAcquire()
	equal(t, false, ok, "both slots are taken")

	first()
	first() // must not free the second holder's slot
	third, ok := l.TryAcquire()
	equal(t, true, ok, "the first slot came back")
	_, ok = l.TryAcquire()
	equal(t, false, ok, "a second release of one slot freed another")

	second()
	third()
	third()
	var held []func()
	for range 2 {
		r, ok := l.TryAcquire()
		equal(t, true, ok, "every slot came back")
		held = append(held, r)
	}
	_, ok = l.TryAcquire()
	equal(t, false, ok, "no more than n slots after repeated releases")
	for _, r := range held {
		r()
	}
}

// Requests over HTTP and in-process holders count against the same slots:
// a request finds them taken by Acquire and is refused after the queue
// timeout, and an Acquire waits for a slot that a request holds.
func TestLimiterMiddlewareAndAcquireShareSlots(t *testing.T) {
	t.Parallel()
	l := middleware.NewLimiter(1, 100*time.Millisecond)
	b := newBlocker()
	srv := httptest.NewServer(l.Middleware()(b))
	defer srv.Close()
	defer close(b.release)

	release, err := l.Acquire(t.Context())
	noErr(t, err)
	start := time.Now()
	refused := <-get(t.Context(), srv.URL)
	requireProblem(t, refused, http.StatusTooManyRequests)
	equal(t, "1", refused.header.Get("Retry-After"))
	if waited := time.Since(start); waited < 100*time.Millisecond {
		t.Fatalf("refused after %v, before the queue timeout", waited)
	}
	equal(t, 0, len(b.entered), "the refused request reached the handler")
	release()

	served := get(t.Context(), srv.URL)
	b.waitEntered(t, 1)
	acquired := make(chan func(), 1)
	go func() {
		r, err := l.Acquire(t.Context())
		if err == nil {
			acquired <- r
		}
	}()
	select {
	case <-acquired:
		t.Fatal("Acquire got the slot a request holds")
	case <-time.After(50 * time.Millisecond):
	}
	b.release <- struct{}{}
	equal(t, http.StatusOK, (<-served).status)
	select {
	case r := <-acquired:
		r()
	case <-time.After(10 * time.Second):
		t.Fatal("Acquire never got the slot the request gave back")
	}
}
