package queue_test

import (
	"encoding/json"
	"io"
	"net/http"
	"testing"

	"github.com/stretchr/testify/require"
)

// reply and roundTrip are the webhook environment's test helpers
// (environments/webhook), which these tests share.

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

// roundTrip sends req and reads the reply: its JSON body, or for an event
// stream the status and headers only (a stream ends with its run).
func roundTrip(t *testing.T, req *http.Request) reply {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	if resp.Header.Get("Content-Type") == "text/event-stream" {
		return reply{status: resp.StatusCode, header: resp.Header}
	}
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}
