package callback_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/stdwebhook"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks/callback"
)

// receiver is a real callback receiver on loopback: it verifies signatures
// with middleware.VerifyWebhook and answers what script says for each
// successive request (the last entry repeats).
type receiver struct {
	srv *httptest.Server

	mu       sync.Mutex
	script   []func(w http.ResponseWriter, r *http.Request)
	requests []received
}

type received struct {
	id, timestamp, signature string
	body                     []byte
}

func answer(status int, headers ...string) func(w http.ResponseWriter, r *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(headers); i += 2 {
			w.Header().Set(headers[i], headers[i+1])
		}
		w.WriteHeader(status)
	}
}

func newReceiver(t testing.TB, secrets []string, script ...func(w http.ResponseWriter, r *http.Request)) *receiver {
	t.Helper()
	r := &receiver{script: script}
	quiet := &middleware.WebhookOpts{Logger: slog.New(slog.DiscardHandler)}
	verified := middleware.VerifyWebhookWith(quiet, secrets...)(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		n := len(r.requests)
		r.requests = append(r.requests, received{
			id: req.Header.Get("webhook-id"), timestamp: req.Header.Get("webhook-timestamp"),
			signature: req.Header.Get("webhook-signature"), body: body,
		})
		step := r.script[min(n, len(r.script)-1)]
		r.mu.Unlock()
		step(w, req)
	}))
	r.srv = httptest.NewServer(verified)
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) got() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.requests...)
}

// testSecret is the secret both sides share in these tests.
var testSecret = stdwebhook.NewSecret()

func newDeliverer(t testing.TB, cfg callback.Config) *callback.Deliverer {
	t.Helper()
	if cfg.Secrets == nil {
		cfg.Secrets = []stdwebhook.Secret{testSecret}
	}
	cfg.AllowPrivate = true // the receiver is on loopback
	d, err := callback.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func testMessage(t testing.TB, url string) callback.Message {
	t.Helper()
	body, err := callback.EncodePayload(callback.TypeRunCompleted, time.Unix(1_800_000_000, 0),
		json.RawMessage(`{"name":"run-1","phase":"succeeded"}`))
	if err != nil {
		t.Fatal(err)
	}
	return callback.Message{ID: "msg_test1", URL: url, Body: body}
}

func TestDeliverOutcomes(t *testing.T) {
	t.Parallel()
	// The receiver checks webhook-timestamp against its real clock, so the
	// injected clock must be near real time; whole seconds make the
	// Retry-After date exact.
	now := time.Now().Truncate(time.Second)
	tests := []struct {
		name       string
		answer     func(w http.ResponseWriter, r *http.Request)
		delivered  bool
		permanent  bool
		status     int
		retryAfter time.Duration
		wantErr    error
	}{
		{name: "200", answer: answer(200), delivered: true, status: 200},
		{name: "204", answer: answer(204), delivered: true, status: 204},
		{name: "500 retries", answer: answer(500), status: 500},
		{name: "429 with Retry-After seconds", answer: answer(429, "Retry-After", "120"), status: 429, retryAfter: 2 * time.Minute},
		{name: "503 with Retry-After date", answer: answer(503, "Retry-After", now.Add(90*time.Second).Format(http.TimeFormat)), status: 503, retryAfter: 90 * time.Second},
		{name: "503 with malformed Retry-After", answer: answer(503, "Retry-After", "soon"), status: 503},
		{name: "410 stops", answer: answer(410), status: 410, permanent: true, wantErr: callback.ErrGone},
		{name: "400 retries", answer: answer(400), status: 400},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rcv := newReceiver(t, []string{testSecret.Encode()}, tc.answer)
			d := newDeliverer(t, callback.Config{Now: func() time.Time { return now }})
			res := d.Deliver(context.Background(), testMessage(t, rcv.srv.URL))
			if len(rcv.got()) != 1 {
				t.Fatalf("receiver saw %d requests, want 1", len(rcv.got()))
			}
			if res.Delivered() != tc.delivered || res.Permanent != tc.permanent || res.StatusCode != tc.status || res.RetryAfter != tc.retryAfter {
				t.Fatalf("result = %+v, want delivered=%v permanent=%v status=%d retryAfter=%v",
					res, tc.delivered, tc.permanent, tc.status, tc.retryAfter)
			}
			if tc.wantErr != nil && !errors.Is(res.Err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", res.Err, tc.wantErr)
			}
			var se *callback.StatusError
			if !tc.delivered && tc.wantErr == nil && (!errors.As(res.Err, &se) || se.StatusCode != tc.status) {
				t.Fatalf("err = %v, want *StatusError{%d}", res.Err, tc.status)
			}
		})
	}
}

func TestDeliverSignsVerifiably(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(204))
	d := newDeliverer(t, callback.Config{})
	msg := testMessage(t, rcv.srv.URL+"/hooks?token=abc")
	res := d.Deliver(context.Background(), msg)
	if !res.Delivered() || res.StatusCode != 204 {
		t.Fatalf("result = %+v, want delivered 204", res)
	}
	got := rcv.got()
	if len(got) != 1 || got[0].id != msg.ID || !bytes.Equal(got[0].body, msg.Body) {
		t.Fatalf("receiver got %+v, want id %s and the message body", got, msg.ID)
	}
	var p struct {
		Type      string          `json:"type"`
		Timestamp time.Time       `json:"timestamp"`
		Data      json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(got[0].body, &p); err != nil || p.Type != "run.completed" || string(p.Data) != `{"name":"run-1","phase":"succeeded"}` {
		t.Fatalf("payload %s: %v", got[0].body, err)
	}
}

// A receiver with a different secret refuses the callback: the signature is
// real, not decoration.
func TestDeliverWrongSecretRefused(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, []string{stdwebhook.NewSecret().Encode()}, answer(204))
	res := newDeliverer(t, callback.Config{}).Deliver(context.Background(), testMessage(t, rcv.srv.URL))
	if res.Delivered() || res.StatusCode != 401 {
		t.Fatalf("result = %+v, want 401 from the receiver", res)
	}
}

// While a secret rotates every attempt carries one signature per secret,
// and receivers that know either accept it.
func TestDeliverRotation(t *testing.T) {
	t.Parallel()
	oldS, newS := stdwebhook.NewSecret(), stdwebhook.NewSecret()
	d := newDeliverer(t, callback.Config{Secrets: []stdwebhook.Secret{newS, oldS}})
	for name, s := range map[string]stdwebhook.Secret{"old": oldS, "new": newS} {
		rcv := newReceiver(t, []string{s.Encode()}, answer(200))
		res := d.Deliver(context.Background(), testMessage(t, rcv.srv.URL))
		if !res.Delivered() {
			t.Fatalf("receiver knowing the %s secret: %+v", name, res)
		}
		if n := len(strings.Fields(rcv.got()[0].signature)); n != 2 {
			t.Fatalf("signature header has %d entries, want 2", n)
		}
	}
}

// Each attempt is signed afresh: same webhook-id and body, new timestamp.
func TestDeliverFreshTimestampPerAttempt(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(500))
	clock := time.Now().Add(-2 * time.Minute)
	d := newDeliverer(t, callback.Config{Now: func() time.Time { return clock }})
	msg := testMessage(t, rcv.srv.URL)
	d.Deliver(context.Background(), msg)
	clock = clock.Add(time.Minute)
	d.Deliver(context.Background(), msg)

	got := rcv.got()
	if len(got) != 2 || got[0].id != got[1].id || !bytes.Equal(got[0].body, got[1].body) {
		t.Fatalf("attempts differ in id or body: %+v", got)
	}
	if got[0].timestamp == got[1].timestamp || got[0].signature == got[1].signature {
		t.Fatalf("attempts share timestamp %s or signature", got[0].timestamp)
	}
}

func TestDeliverDoesNotFollowRedirects(t *testing.T) {
	t.Parallel()
	target := newReceiver(t, []string{testSecret.Encode()}, answer(200))
	for _, code := range []int{301, 302, 307, 308} {
		rcv := newReceiver(t, []string{testSecret.Encode()}, answer(code, "Location", target.srv.URL))
		res := newDeliverer(t, callback.Config{}).Deliver(context.Background(), testMessage(t, rcv.srv.URL))
		var se *callback.StatusError
		if res.Delivered() || res.StatusCode != code || !errors.As(res.Err, &se) || res.Permanent {
			t.Fatalf("%d: result = %+v, want a retryable StatusError", code, res)
		}
	}
	if n := len(target.got()); n != 0 {
		t.Fatalf("redirect target was reached %d times", n)
	}
}

func TestDeliverGuardRefusesLoopback(t *testing.T) {
	t.Parallel()
	rcv := newReceiver(t, []string{testSecret.Encode()}, answer(200))
	d, err := callback.New(callback.Config{Secrets: []stdwebhook.Secret{testSecret}}) // guard on
	if err != nil {
		t.Fatal(err)
	}
	res := d.Deliver(context.Background(), testMessage(t, rcv.srv.URL))
	if res.Delivered() || !res.Permanent || !errors.Is(res.Err, callback.ErrForbiddenAddress) {
		t.Fatalf("result = %+v, want a permanent ErrForbiddenAddress", res)
	}
	if len(rcv.got()) != 0 {
		t.Fatal("guarded deliverer reached the loopback receiver")
	}
}

func TestDeliverTimeout(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	d := newDeliverer(t, callback.Config{Timeout: 100 * time.Millisecond})
	res := d.Deliver(context.Background(), testMessage(t, slow.URL+"/hook?token=s3cret"))
	if res.Delivered() || res.Permanent || res.StatusCode != 0 || res.Err == nil {
		t.Fatalf("result = %+v, want a retryable transport error", res)
	}
	// The error is stored on the run and logged: no URL, so no token.
	if strings.Contains(res.Err.Error(), "s3cret") || strings.Contains(res.Err.Error(), "/hook") {
		t.Fatalf("error %q quotes the URL", res.Err)
	}
}

// A receiver that streams an endless body cannot hold the worker: the read
// is bounded and the attempt ends.
func TestDeliverBoundsResponseBody(t *testing.T) {
	t.Parallel()
	endless := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		for r.Context().Err() == nil {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	defer endless.Close()
	d := newDeliverer(t, callback.Config{MaxResponseBytes: 1 << 10})
	res := d.Deliver(context.Background(), testMessage(t, endless.URL))
	if !res.Delivered() {
		t.Fatalf("result = %+v, want delivered (2xx)", res)
	}
}

func TestDeliverInvalidURLIsPermanent(t *testing.T) {
	t.Parallel()
	d := newDeliverer(t, callback.Config{})
	for _, u := range []string{"ftp://example.com/x", "http://user:pw@example.com/", "/relative"} {
		res := d.Deliver(context.Background(), callback.Message{ID: "msg_x", URL: u, Body: []byte("{}")})
		if !res.Permanent || !errors.Is(res.Err, callback.ErrInvalidURL) {
			t.Fatalf("%s: result = %+v, want permanent ErrInvalidURL", u, res)
		}
	}
}

func TestNewRequiresSecret(t *testing.T) {
	t.Parallel()
	if _, err := callback.New(callback.Config{}); !errors.Is(err, callback.ErrNoSecret) {
		t.Fatalf("New without secrets: %v, want ErrNoSecret", err)
	}
	if _, err := callback.New(callback.Config{Secrets: []stdwebhook.Secret{{}}}); err == nil {
		t.Fatal("New with a zero secret: want an error")
	}
}

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Duration
	}{
		{"", 0},
		{"0", 0},
		{"-5", 0},
		{"30", 30 * time.Second},
		{"99999999999999999", 365 * 24 * time.Hour},
		{now.Add(time.Hour).Format(http.TimeFormat), time.Hour},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"Sunday, 22-Nov-26 12:10:00 GMT", 10 * time.Minute}, // RFC 850
		{"tomorrow", 0},
		{"1.5", 0},
	}
	for _, tc := range tests {
		if got := callback.ParseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
