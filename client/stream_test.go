package client_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/tasks"
)

// A stream cut after each event is resumed after the last one seen, for
// both the events and the logs of a run.
func TestStreamsResumeAfterTheLastEventSeen(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var resumedFrom []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		resumedFrom = append(resumedFrom, r.Header.Get("Last-Event-Id"))
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		switch r.Header.Get("Last-Event-Id") {
		case "":
			fmt.Fprint(w, "id: 1\nevent: phase\ndata: {\"seq\":1,\"phase\":\"queued\"}\n\nid: 1\nevent: log\ndata: {\"seq\":1,\"message\":\"a\"}\n\n")
		default:
			fmt.Fprint(w, "id: 2\nevent: phase\ndata: {\"seq\":2,\"phase\":\"succeeded\"}\n\nid: 2\nevent: log\ndata: {\"seq\":2,\"message\":\"b\"}\n\nevent: end\ndata: {}\n\n")
		}
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, aliceToken)
	ctx := testContext(t)

	var phases []tasks.Phase
	for e, err := range c.Events(ctx, "r") {
		require.NoError(t, err)
		phases = append(phases, e.Phase)
	}
	require.Equal(t, []tasks.Phase{tasks.PhaseQueued, tasks.PhaseSucceeded}, phases)
	var lines []string
	for l, err := range c.Logs(ctx, "r", &client.LogsOptions{Follow: true}) {
		require.NoError(t, err)
		lines = append(lines, l.Message)
	}
	require.Equal(t, []string{"a", "b"}, lines)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, []string{"", "1", "", "1"}, resumedFrom)
}

// The server ends a stream after a while (at most 5 minutes, or with the
// caller's session) without its end event: a stream that lasted is
// resumed however many of them bring no new event, unlike one that ends
// at once.
func TestLastingStreamsWithoutEventsAreResumed(t *testing.T) {
	client.SetLastingStream(t, 50*time.Millisecond)
	var mu sync.Mutex
	opened := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		opened++
		n := opened
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		if n > 10 {
			fmt.Fprint(w, "id: 1\nevent: phase\ndata: {\"seq\":1,\"phase\":\"succeeded\"}\n\n")
			return
		}
		fmt.Fprint(w, ": keep-alive\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(100 * time.Millisecond) // then the server's bound ends it
	}))
	t.Cleanup(srv.Close)
	c := newClient(t, srv.URL, aliceToken)
	var phases []tasks.Phase
	for e, err := range c.Events(testContext(t), "r") {
		require.NoError(t, err)
		phases = append(phases, e.Phase)
	}
	require.Equal(t, []tasks.Phase{tasks.PhaseSucceeded}, phases)
	mu.Lock()
	defer mu.Unlock()
	require.Equal(t, 11, opened)
}
