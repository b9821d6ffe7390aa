package middleware_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
)

// trickledPost sends a chunked POST to srv whose body comes one byte every
// 50 ms for 10 s, and returns the answer, read while the body is still on
// its way.
func trickledPost(t *testing.T, srv *httptest.Server) *http.Response {
	t.Helper()
	addr := srv.Listener.Addr().String()
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n\r\n", addr)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 200 {
			time.Sleep(50 * time.Millisecond)
			if _, err := io.WriteString(conn, "1\r\nx\r\n"); err != nil {
				return
			}
		}
		_, _ = io.WriteString(conn, "0\r\n\r\n")
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	require.NoError(t, err)
	select {
	case <-done:
		t.Fatal("the answer waited for the body")
	default:
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// A handler may shorten the body's deadline, not lengthen it: huma sets
// its own BodyReadTimeout through http.ResponseController.
func TestBodyTimeoutCannotBeLengthened(t *testing.T) {
	t.Parallel()
	h := middleware.BodyTimeout(200 * time.Millisecond)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		require.NoError(t, http.NewResponseController(w).SetReadDeadline(time.Now().Add(time.Hour)))
		if _, err := io.ReadAll(r.Body); err != nil {
			// What a handler that knows nothing of the timeout answers:
			// BodyTimeout makes it a 408.
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		_, _ = io.WriteString(w, "read it all")
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp := trickledPost(t, srv)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	require.True(t, resp.Close)
}

// The deadline is the body's only: a response that takes longer than the
// body timeout goes on with a live context.
func TestBodyTimeoutSparesALongResponse(t *testing.T) {
	t.Parallel()
	const d = 100 * time.Millisecond
	h := middleware.BodyTimeout(d)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := io.ReadAll(r.Body)
		require.NoError(t, err)
		select {
		case <-r.Context().Done():
			http.Error(w, "cancelled", http.StatusServiceUnavailable)
		case <-time.After(5 * d):
			_, _ = io.WriteString(w, "still here")
		}
	}))
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Post(srv.URL, "text/plain", strings.NewReader("hello"))
	require.NoError(t, err)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(b))
}

func TestBodyTimeoutPanicsOnNonPositive(t *testing.T) {
	t.Parallel()
	require.PanicsWithValue(t, "middleware.BodyTimeout: d must be positive, got 0s", func() { middleware.BodyTimeout(0) })
}
