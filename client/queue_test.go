package client_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/queue"
)

// generator is an app environment's own handler behind its queue.
func generator(entered chan<- struct{}) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /generate", func(w http.ResponseWriter, r *http.Request) {
		var in struct {
			Prompt string `json:"prompt"`
		}
		_ = json.NewDecoder(r.Body).Decode(&in)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Size", r.URL.Query().Get("size"))
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]string{"text": "a poem about " + in.Prompt})
	})
	mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		entered <- struct{}{}
		<-r.Context().Done()
	})
	return mux
}

func TestAppQueueRoutes(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	entered := make(chan struct{}, 1)
	env := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "gen", PathPrefix: "/gen"},
		Handler:  generator(entered),
		Queue:    queue.MustNew(queue.Config{}),
	})
	base := serve(t, env)
	c := newClient(t, base+"/gen", aliceToken)
	client.Strict(c)

	sub, err := c.QueueSubmit(ctx, "generate?size=2", []byte(`{"prompt":"queues"}`), nil)
	require.NoError(t, err)
	require.Equal(t, client.QueueInQueue, sub.Status)
	require.Equal(t, "/gen/queue/requests/"+sub.RequestID+"/status", sub.StatusURL)
	var seen []string
	st, err := c.QueueWait(ctx, sub.RequestID, func(s *client.QueueStatus) { seen = append(seen, s.Status) })
	require.NoError(t, err)
	require.Equal(t, client.QueueCompleted, st.Status)
	require.Empty(t, st.ErrorType)
	require.Equal(t, client.QueueCompleted, seen[len(seen)-1])

	res, err := c.QueueResult(ctx, sub.RequestID)
	require.NoError(t, err)
	require.Equal(t, http.StatusCreated, res.StatusCode)
	require.Equal(t, "2", res.Header.Get("X-Size"))
	require.JSONEq(t, `{"text":"a poem about queues"}`, string(res.Body))
	withLogs, err := c.QueueStatus(ctx, sub.RequestID, true)
	require.NoError(t, err)
	require.Equal(t, client.QueueCompleted, withLogs.Status)

	// Cancel one in progress: its result is a CANCELLED problem.
	slow, err := c.QueueSubmit(ctx, "/slow", nil, &client.QueueSubmitOptions{LowPriority: true, StartTimeout: time.Minute})
	require.NoError(t, err)
	<-entered
	_, err = c.QueueResult(ctx, slow.RequestID)
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusBadRequest, apiErr.Status)
	require.Equal(t, client.QueueInProgress, apiErr.Code)

	require.NoError(t, c.QueueCancel(ctx, slow.RequestID))
	st, err = c.QueueWait(ctx, slow.RequestID, nil)
	require.NoError(t, err)
	require.Equal(t, "CANCELLED", st.ErrorType)
	_, err = c.QueueResult(ctx, slow.RequestID)
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusConflict, apiErr.Status)
	require.Equal(t, "CANCELLED", apiErr.Code)
	err = c.QueueCancel(ctx, slow.RequestID)
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, "ALREADY_COMPLETED", apiErr.Code)

	// Someone else's request is not found.
	_, err = newClient(t, base+"/gen", bobToken).QueueStatus(ctx, sub.RequestID, false)
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.Status)
}

// A recorded response is the app's, whatever its status: an error the app
// wrote is not a problem of the queue.
func TestQueueResultKeepsTheAppsErrors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	env := environments.MustAppEnvironment(environments.AppConfig{
		Settings: environments.Settings{Name: "teapot"},
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.Copy(io.Discard, r.Body)
			w.Header().Set("Retry-After", "5")
			http.Error(w, "busy brewing", http.StatusServiceUnavailable)
		}),
		Queue: queue.MustNew(queue.Config{}),
	})
	c := newClient(t, serve(t, env), aliceToken)
	sub, err := c.QueueSubmit(ctx, "brew", []byte("tea"), &client.QueueSubmitOptions{ContentType: "text/plain"})
	require.NoError(t, err)
	_, err = c.QueueWait(ctx, sub.RequestID, nil)
	require.NoError(t, err)
	res, err := c.QueueResult(ctx, sub.RequestID)
	require.NoError(t, err, "a recorded 503 is not retried nor an error")
	require.Equal(t, http.StatusServiceUnavailable, res.StatusCode)
	require.Equal(t, "busy brewing\n", string(res.Body))
}
