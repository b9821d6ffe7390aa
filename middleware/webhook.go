package middleware

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/taskgate/taskgate/internal/problem"
	"github.com/taskgate/taskgate/internal/stdwebhook"
)

// DefaultWebhookMaxBody is the largest webhook body VerifyWebhook reads. The
// body must be read whole before its signature can be checked, so it is
// bounded to keep an unauthenticated sender from filling memory.
const DefaultWebhookMaxBody int64 = 1 << 20

// WebhookOpts tunes VerifyWebhookWith. The zero value (or nil) is the
// default of VerifyWebhook.
type WebhookOpts struct {
	// Tolerance is how far webhook-timestamp may lie from the receiver's
	// clock, either way. Zero means the specification's 5 minutes.
	Tolerance time.Duration
	// MaxBodyBytes bounds the body; larger requests get 413. Zero means
	// DefaultWebhookMaxBody.
	MaxBodyBytes int64
	// Now is the clock; nil means time.Now. Tests inject one.
	Now func() time.Time
	// Logger receives one line per refused message, with the reason and
	// never a secret or signature. Nil means slog.Default().
	Logger *slog.Logger
}

// WebhookMessage describes a verified webhook, for the handler behind
// VerifyWebhook.
type WebhookMessage struct {
	// ID is the webhook-id header: stable across retries of one message, so
	// a receiver deduplicates on it (delivery is at least once).
	ID string
	// Timestamp is when the sender signed this attempt.
	Timestamp time.Time
}

type webhookKey struct{}

// WebhookFromContext returns the message VerifyWebhook admitted.
func WebhookFromContext(ctx context.Context) (WebhookMessage, bool) {
	m, ok := ctx.Value(webhookKey{}).(WebhookMessage)
	return m, ok
}

// VerifyWebhook returns middleware that admits only requests signed per the
// Standard Webhooks specification (webhook-id, webhook-timestamp,
// webhook-signature) by any of secrets, each written "whsec_<base64>". Give
// both the old and the new secret while one rotates. It answers 401
// problem+json to an unsigned, tampered or stale request, and 413 to a body
// over 1 MiB. The verified body is handed to next unchanged and in full.
//
// It panics when no secret is given or one is malformed, naming which.
func VerifyWebhook(secrets ...string) func(http.Handler) http.Handler {
	return VerifyWebhookWith(nil, secrets...)
}

// VerifyWebhookWith is VerifyWebhook with options; opts may be nil.
func VerifyWebhookWith(opts *WebhookOpts, secrets ...string) func(http.Handler) http.Handler {
	keys := mustWebhookSecrets(secrets)
	var o WebhookOpts
	if opts != nil {
		o = *opts
	}
	if o.Tolerance < 0 || o.MaxBodyBytes < 0 {
		panic("middleware.VerifyWebhook: WebhookOpts.Tolerance and WebhookOpts.MaxBodyBytes must not be negative")
	}
	if o.Tolerance == 0 {
		o.Tolerance = stdwebhook.DefaultTolerance
	}
	if o.MaxBodyBytes == 0 {
		o.MaxBodyBytes = DefaultWebhookMaxBody
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}

	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > o.MaxBodyBytes {
				problem.Write(w, r, http.StatusRequestEntityTooLarge, "webhook body too large")
				return
			}
			body, err := io.ReadAll(io.LimitReader(r.Body, o.MaxBodyBytes+1))
			if err != nil {
				problem.Write(w, r, http.StatusBadRequest, "unreadable webhook body")
				return
			}
			if int64(len(body)) > o.MaxBodyBytes {
				problem.Write(w, r, http.StatusRequestEntityTooLarge, "webhook body too large")
				return
			}
			if err := stdwebhook.Verify(keys, r.Header, body, o.Now(), o.Tolerance); err != nil {
				o.Logger.LogAttrs(r.Context(), slog.LevelWarn, "webhook refused",
					slog.String("reason", err.Error()),
					slog.String("webhook_id", webhookLogID(r.Header.Get(stdwebhook.HeaderID))),
					slog.String("remote_addr", r.RemoteAddr))
				// The body says nothing about why: a forger learns nothing.
				problem.Write(w, r, http.StatusUnauthorized, "invalid webhook signature")
				return
			}
			// Verify accepted the timestamp, so it is a plain integer.
			secs, _ := strconv.ParseInt(r.Header.Get(stdwebhook.HeaderTimestamp), 10, 64)
			msg := WebhookMessage{ID: r.Header.Get(stdwebhook.HeaderID), Timestamp: time.Unix(secs, 0)}

			r = r.WithContext(context.WithValue(r.Context(), webhookKey{}, msg))
			r.Body = io.NopCloser(bytes.NewReader(body))
			r.ContentLength = int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
			next.ServeHTTP(w, r)
		})
	}
}

// mustWebhookSecrets parses the secrets or panics naming the bad one by its
// position, never by its text.
func mustWebhookSecrets(secrets []string) []stdwebhook.Secret {
	if len(secrets) == 0 {
		panic("middleware.VerifyWebhook: no secrets given (set the receiver's whsec_ secret, e.g. from TASKGATE_WEBHOOK_SECRET)")
	}
	keys := make([]stdwebhook.Secret, len(secrets))
	for i, s := range secrets {
		k, err := stdwebhook.ParseSecret(s)
		if err != nil {
			panic(fmt.Sprintf("middleware.VerifyWebhook: secrets[%d] is not a valid whsec_ secret: %v", i, err))
		}
		keys[i] = k
	}
	return keys
}

// webhookLogID bounds the sender-controlled id before it reaches a log line.
func webhookLogID(id string) string {
	const maxLen = 64
	if len(id) > maxLen {
		return id[:maxLen]
	}
	return id
}
