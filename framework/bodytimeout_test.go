package framework_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/middleware"
)

const bodyToken = "body-token-0123456789"

// readingApp serves one authenticated environment, under /a, whose handler
// reads the whole body and answers its length.
func readingApp(t *testing.T, bodyTimeout time.Duration) *framework.App {
	t.Helper()
	tokens, err := middleware.ParseStaticTokens(bodyToken + "=alice")
	require.NoError(t, err)
	env := &plainEnv{s: environments.Settings{Name: "a", PathPrefix: "/a"}, h: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, len(b))
	})}
	return &framework.App{Environments: []environments.Environment{env}, Authenticator: tokens, BodyTimeout: bodyTimeout}
}

// trickle is a client that sends a chunked POST whose body comes one byte
// per tick, n bytes in all.
type trickle struct {
	conn     net.Conn
	br       *bufio.Reader
	finished atomic.Bool // the whole body went out
}

func startTrickle(t *testing.T, base, path, header string, n int, tick time.Duration) *trickle {
	t.Helper()
	addr := strings.TrimPrefix(base, "http://")
	conn, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	tr := &trickle{conn: conn, br: bufio.NewReader(conn)}
	_, err = fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: %s\r\nTransfer-Encoding: chunked\r\n%s\r\n", path, addr, header)
	require.NoError(t, err)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range n {
			time.Sleep(tick)
			if _, err := io.WriteString(conn, "1\r\nx\r\n"); err != nil {
				return
			}
		}
		if _, err := io.WriteString(conn, "0\r\n\r\n"); err == nil {
			tr.finished.Store(true)
		}
	}()
	t.Cleanup(func() {
		conn.Close()
		<-done
	})
	return tr
}

// response reads the answer; the body must still be on its way.
func (tr *trickle) response(t *testing.T) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(tr.br, nil)
	require.NoError(t, err)
	require.False(t, tr.finished.Load(), "the answer waited for the body")
	_, err = io.Copy(io.Discard, resp.Body)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// closed waits for the server to close the connection; the body must
// still be on its way.
func (tr *trickle) closed(t *testing.T) {
	t.Helper()
	_, err := tr.br.ReadByte()
	require.Error(t, err, "the server must close the connection")
	require.False(t, tr.finished.Load(), "the connection was held until the body ended")
}

// An answer that needs no body goes out at once, and the connection is
// closed, while the client is still trickling its body: it no longer waits
// for the body (net/http's drain, up to ReadTimeout).
func TestRefusalDoesNotWaitForTheBody(t *testing.T) {
	t.Parallel()
	base, _, _ := serve(t, readingApp(t, 0))
	for _, tc := range []struct {
		name, path, header string
		status             int
	}{
		{"no credentials", "/a/", "", http.StatusUnauthorized},
		{"no environment", "/elsewhere", "Authorization: Bearer " + bodyToken + "\r\n", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr := startTrickle(t, base, tc.path, tc.header, 200, 50*time.Millisecond) // 10 s of body
			resp := tr.response(t)
			require.Equal(t, tc.status, resp.StatusCode)
			require.True(t, resp.Close, "Connection: close")
			tr.closed(t)
		})
	}
}

// An authenticated body that takes longer than BodyTimeout is cut: 408
// problem+json, then the connection closes, long before the body (or
// ReadTimeout) would have ended.
func TestSlowBodyIsCutAtTheBodyTimeout(t *testing.T) {
	t.Parallel()
	base, _, _ := serve(t, readingApp(t, 300*time.Millisecond))
	tr := startTrickle(t, base, "/a/", "Authorization: Bearer "+bodyToken+"\r\n", 200, 50*time.Millisecond)
	resp := tr.response(t)
	require.Equal(t, http.StatusRequestTimeout, resp.StatusCode)
	require.Equal(t, "application/problem+json", resp.Header.Get("Content-Type"))
	tr.closed(t)
}

// A body that arrives in time is served, and the connection kept.
func TestBodyInTimeKeepsTheConnection(t *testing.T) {
	t.Parallel()
	base, _, _ := serve(t, readingApp(t, 5*time.Second))
	for range 2 {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, base+"/a/", strings.NewReader("hello"))
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+bodyToken)
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		require.Equal(t, "5", string(b))
		require.False(t, resp.Close, "the connection is kept")
	}
}

func TestBodyTimeoutFromEnv(t *testing.T) {
	t.Parallel()
	cfg, err := framework.ParseEnv(env(nil))
	require.NoError(t, err)
	require.Equal(t, 60*time.Second, cfg.BodyTimeout)
	cfg, err = framework.ParseEnv(env(map[string]string{"TASKGATE_BODY_TIMEOUT": "90s"}))
	require.NoError(t, err)
	require.Equal(t, 90*time.Second, cfg.BodyTimeout)
	for _, v := range []string{"0", "-1s", "60"} {
		_, err := framework.ParseEnv(env(map[string]string{"TASKGATE_BODY_TIMEOUT": v}))
		require.ErrorContains(t, err, "TASKGATE_BODY_TIMEOUT", v)
	}
}
