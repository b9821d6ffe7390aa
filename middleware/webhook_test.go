package middleware_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/internal/stdwebhook"
	"github.com/taskgate/taskgate/middleware"
)

// The Standard Webhooks test vector.
const (
	webhookVecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	webhookVecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	webhookVecBody   = `{"test": 2432232314}`
	webhookVecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

var webhookVecTime = time.Unix(1614265330, 0)

// webhookEcho is the receiver behind the middleware: it answers the body it
// read and the message id it was handed.
func webhookEcho(calls *int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*calls++
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		msg, _ := middleware.WebhookFromContext(r.Context())
		w.Header().Set("X-Webhook-Id", msg.ID)
		w.Header().Set("X-Webhook-Time", fmt.Sprint(msg.Timestamp.Unix()))
		w.Header().Set("X-Content-Length", fmt.Sprint(r.ContentLength))
		_, _ = w.Write(body)
	})
}

func webhookRequest(t *testing.T, url string, secrets []string, id string, ts time.Time, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := stdwebhook.ParseSecrets(secrets...)
	if err != nil {
		t.Fatal(err)
	}
	stdwebhook.SetHeaders(req.Header, keys, id, ts, []byte(body))
	return req
}

func TestVerifyWebhook(t *testing.T) {
	t.Parallel()
	other := stdwebhook.NewSecret().Encode()
	fresh := time.Now()

	tests := []struct {
		name     string
		accept   []string // secrets the receiver knows
		signWith []string // secrets the sender signs with
		ts       time.Time
		body     string // body sent; the signature always covers webhookVecBody
		mutate   func(h http.Header)
		want     int
	}{
		{name: "valid", accept: []string{webhookVecSecret}, signWith: []string{webhookVecSecret}, ts: fresh, body: webhookVecBody, want: http.StatusOK},
		{name: "rotation: receiver knows old and new, sender signs new", accept: []string{other, webhookVecSecret}, signWith: []string{webhookVecSecret}, ts: fresh, body: webhookVecBody, want: http.StatusOK},
		{name: "rotation: sender signs old and new, receiver knows new", accept: []string{other}, signWith: []string{webhookVecSecret, other}, ts: fresh, body: webhookVecBody, want: http.StatusOK},
		{name: "timestamp 4m in the past", accept: []string{webhookVecSecret}, signWith: []string{webhookVecSecret}, ts: fresh.Add(-4 * time.Minute), body: webhookVecBody, want: http.StatusOK},
		{name: "tampered body", accept: []string{webhookVecSecret}, signWith: []string{webhookVecSecret}, ts: fresh, body: `{"test": 1}`, want: http.StatusUnauthorized},
		{name: "wrong secret", accept: []string{other}, signWith: []string{webhookVecSecret}, ts: fresh, body: webhookVecBody, want: http.StatusUnauthorized},
		{name: "stale timestamp", accept: []string{webhookVecSecret}, signWith: []string{webhookVecSecret}, ts: fresh.Add(-6 * time.Minute), body: webhookVecBody, want: http.StatusUnauthorized},
		{name: "future timestamp", accept: []string{webhookVecSecret}, signWith: []string{webhookVecSecret}, ts: fresh.Add(6 * time.Minute), body: webhookVecBody, want: http.StatusUnauthorized},
		{
			name: "missing signature", accept: []string{webhookVecSecret}, signWith: []string{webhookVecSecret}, ts: fresh, body: webhookVecBody, want: http.StatusUnauthorized,
			mutate: func(h http.Header) { h.Del("webhook-signature") },
		},
		{
			name: "missing id", accept: []string{webhookVecSecret}, signWith: []string{webhookVecSecret}, ts: fresh, body: webhookVecBody, want: http.StatusUnauthorized,
			mutate: func(h http.Header) { h.Del("webhook-id") },
		},
		{
			name: "missing timestamp", accept: []string{webhookVecSecret}, signWith: []string{webhookVecSecret}, ts: fresh, body: webhookVecBody, want: http.StatusUnauthorized,
			mutate: func(h http.Header) { h.Del("webhook-timestamp") },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			srv := httptest.NewServer(middleware.VerifyWebhook(tc.accept...)(webhookEcho(&calls)))
			defer srv.Close()

			req := webhookRequest(t, srv.URL, tc.signWith, webhookVecID, tc.ts, webhookVecBody)
			req.Body = io.NopCloser(strings.NewReader(tc.body))
			req.ContentLength = int64(len(tc.body))
			if tc.mutate != nil {
				tc.mutate(req.Header)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			got, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tc.want, got)
			}
			if tc.want != http.StatusOK {
				if calls != 0 {
					t.Fatalf("handler ran %d times for a refused webhook", calls)
				}
				if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
					t.Fatalf("Content-Type = %q, want %q", ct, problem.ContentType)
				}
				var p struct {
					Status int    `json:"status"`
					Detail string `json:"detail"`
				}
				if err := json.Unmarshal(got, &p); err != nil || p.Status != tc.want {
					t.Fatalf("problem body %s: %v", got, err)
				}
				return
			}
			if calls != 1 || string(got) != webhookVecBody {
				t.Fatalf("handler calls = %d, body = %q; want 1, %q", calls, got, webhookVecBody)
			}
			if id := resp.Header.Get("X-Webhook-Id"); id != webhookVecID {
				t.Fatalf("WebhookFromContext id = %q, want %q", id, webhookVecID)
			}
			if ts := resp.Header.Get("X-Webhook-Time"); ts != fmt.Sprint(tc.ts.Unix()) {
				t.Fatalf("WebhookFromContext timestamp = %s, want %d", ts, tc.ts.Unix())
			}
			if cl := resp.Header.Get("X-Content-Length"); cl != fmt.Sprint(len(webhookVecBody)) {
				t.Fatalf("restored ContentLength = %s, want %d", cl, len(webhookVecBody))
			}
		})
	}
}

// The spec vector verifies with an injected clock at its own timestamp.
func TestVerifyWebhookSpecVectorWithClock(t *testing.T) {
	t.Parallel()
	calls := 0
	h := middleware.VerifyWebhookWith(&middleware.WebhookOpts{Now: func() time.Time { return webhookVecTime.Add(299 * time.Second) }},
		webhookVecSecret)(webhookEcho(&calls))

	req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(webhookVecBody))
	req.Header.Set("webhook-id", webhookVecID)
	req.Header.Set("webhook-timestamp", "1614265330")
	req.Header.Set("webhook-signature", webhookVecSig)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || rec.Body.String() != webhookVecBody {
		t.Fatalf("status %d body %q, want 200 with the vector body", rec.Code, rec.Body.String())
	}
}

func TestVerifyWebhookBodyLimit(t *testing.T) {
	t.Parallel()
	const limit = 64
	tests := []struct {
		name    string
		size    int
		chunked bool // no Content-Length: the limit must hold while reading
		want    int
	}{
		{"at limit", limit, false, http.StatusOK},
		{"over limit with Content-Length", limit + 1, false, http.StatusRequestEntityTooLarge},
		{"over limit chunked", 10 * limit, true, http.StatusRequestEntityTooLarge},
		{"at limit chunked", limit, true, http.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			calls := 0
			srv := httptest.NewServer(middleware.VerifyWebhookWith(&middleware.WebhookOpts{MaxBodyBytes: limit}, webhookVecSecret)(webhookEcho(&calls)))
			defer srv.Close()
			body := strings.Repeat("x", tc.size)
			req := webhookRequest(t, srv.URL, []string{webhookVecSecret}, "msg_1", time.Now(), body)
			if tc.chunked {
				req.Body = io.NopCloser(bytes.NewReader([]byte(body)))
				req.ContentLength = -1
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tc.want)
			}
			if wantCalls := map[bool]int{true: 1, false: 0}[tc.want == http.StatusOK]; calls != wantCalls {
				t.Fatalf("handler calls = %d, want %d", calls, wantCalls)
			}
		})
	}
}

func TestVerifyWebhookPanicsOnBadConfig(t *testing.T) {
	t.Parallel()
	const leaky = "whsec_c2hvcnQ=" // valid base64, too short
	tests := []struct {
		name    string
		secrets []string
		want    string
	}{
		{"no secrets", nil, "no secrets"},
		{"empty secret", []string{""}, "secrets[0]"},
		{"second malformed", []string{webhookVecSecret, leaky}, "secrets[1]"},
		{"not base64", []string{"whsec_***"}, "secrets[0]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			defer func() {
				msg := fmt.Sprint(recover())
				if !strings.Contains(msg, tc.want) || !strings.Contains(msg, "middleware.VerifyWebhook") {
					t.Fatalf("panic %q does not name %q", msg, tc.want)
				}
				if strings.Contains(msg, "c2hvcnQ") {
					t.Fatalf("panic message leaks the secret: %q", msg)
				}
			}()
			middleware.VerifyWebhook(tc.secrets...)
		})
	}
}

// A receiver for taskgate's signed callbacks: the secret is the one the
// taskgate server signs with (its TASKGATE_WEBHOOK_SECRET).
func ExampleVerifyWebhook() {
	mux := http.NewServeMux()
	verify := middleware.VerifyWebhook(webhookVecSecret)
	mux.Handle("POST /callbacks", verify(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		msg, _ := middleware.WebhookFromContext(r.Context())
		body, _ := io.ReadAll(r.Body)
		// Delivery is at least once: deduplicate on msg.ID before acting.
		fmt.Printf("%s %s\n", msg.ID, body)
		w.WriteHeader(http.StatusNoContent)
	})))

	// A forged request is refused before the handler runs.
	req := httptest.NewRequest(http.MethodPost, "/callbacks", strings.NewReader(`{"type":"run.completed"}`))
	req.Header.Set("webhook-id", "msg_forged")
	req.Header.Set("webhook-timestamp", fmt.Sprint(time.Now().Unix()))
	req.Header.Set("webhook-signature", "v1,Zm9yZ2VkIHNpZ25hdHVyZQ==")
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code)

	// A genuine one, signed as taskgate signs its callbacks, gets through.
	secret, _ := stdwebhook.ParseSecret(webhookVecSecret)
	body := []byte(`{"type":"run.completed"}`)
	req = httptest.NewRequest(http.MethodPost, "/callbacks", bytes.NewReader(body))
	stdwebhook.SetHeaders(req.Header, []stdwebhook.Secret{secret}, "msg_1", time.Now(), body)
	rec = httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	fmt.Println(rec.Code)
	// Output:
	// 401
	// msg_1 {"type":"run.completed"}
	// 204
}
