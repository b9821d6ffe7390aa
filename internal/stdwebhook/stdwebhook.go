package stdwebhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The header names of the specification. Go canonicalises them on the wire
// (Webhook-Id); HTTP header names are case-insensitive.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

const (
	// SecretPrefix starts the text form of every secret.
	SecretPrefix = "whsec_"
	// DefaultTolerance is how far a message's timestamp may lie from the
	// receiver's clock, in either direction, before it is refused as a replay.
	DefaultTolerance = 5 * time.Minute

	// MinSecretBytes and MaxSecretBytes bound the decoded key length, as the
	// specification recommends.
	MinSecretBytes = 24
	MaxSecretBytes = 64
	// newSecretBytes is the key length NewSecret generates.
	newSecretBytes = 32

	// signatureVersion prefixes each signature; other versions (v1a, an
	// asymmetric scheme) are skipped by Verify, not refused.
	signatureVersion = "v1"
	// maxSignatureHeader bounds the work Verify does on a hostile header.
	maxSignatureHeader = 4096
)

// Errors returned by ParseSecret and Verify. Verify's errors all wrap
// ErrVerification, so a caller can test one sentinel to refuse the message.
var (
	ErrInvalidSecret     = errors.New("stdwebhook: invalid secret")
	ErrVerification      = errors.New("stdwebhook: verification failed")
	ErrMissingHeaders    = fmt.Errorf("%w: missing webhook-id, webhook-timestamp or webhook-signature header", ErrVerification)
	ErrInvalidTimestamp  = fmt.Errorf("%w: malformed webhook-timestamp", ErrVerification)
	ErrTimestampTooOld   = fmt.Errorf("%w: timestamp too old", ErrVerification)
	ErrTimestampTooNew   = fmt.Errorf("%w: timestamp too far in the future", ErrVerification)
	ErrNoMatchingSig     = fmt.Errorf("%w: no matching signature", ErrVerification)
	ErrNoSecrets         = errors.New("stdwebhook: no secrets configured")
	errSignatureTooLarge = fmt.Errorf("%w: signature header too large", ErrVerification)
)

// Secret is an HMAC key. Its zero value is not usable. Its String, GoString
// and LogValue methods redact the key so that printing a config or logging it
// with slog never leaks it; Encode gives the "whsec_" form for storage.
type Secret struct {
	key []byte
}

// ParseSecret decodes "whsec_<base64>". As the reference libraries do, the
// prefix may be omitted. Padding is optional. The decoded key must be
// MinSecretBytes to MaxSecretBytes long.
func ParseSecret(s string) (Secret, error) {
	s = strings.TrimPrefix(strings.TrimSpace(s), SecretPrefix)
	if s == "" {
		return Secret{}, fmt.Errorf("%w: empty", ErrInvalidSecret)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(s)
	}
	if err != nil {
		// The base64 error names an offset, never the secret itself.
		return Secret{}, fmt.Errorf("%w: not base64: %w", ErrInvalidSecret, err)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return Secret{}, fmt.Errorf("%w: key is %d bytes, want %d to %d", ErrInvalidSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return Secret{key: key}, nil
}

// ParseSecrets parses each of ss with ParseSecret. It reports the position of
// the first malformed secret, never its text.
func ParseSecrets(ss ...string) ([]Secret, error) {
	out := make([]Secret, 0, len(ss))
	for i, s := range ss {
		sec, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
		out = append(out, sec)
	}
	return out, nil
}

// NewSecret returns a fresh random 32-byte secret.
func NewSecret() Secret {
	key := make([]byte, newSecretBytes)
	// crypto/rand.Read never returns an error since Go 1.24; it crashes the
	// program instead when the kernel has no entropy to give.
	_, _ = rand.Read(key)
	return Secret{key: key}
}

// Encode returns the secret as "whsec_<base64>", the form ParseSecret reads.
// Treat the result as a credential.
func (s Secret) Encode() string {
	return SecretPrefix + base64.StdEncoding.EncodeToString(s.key)
}

// IsZero reports whether s holds no key.
func (s Secret) IsZero() bool { return len(s.key) == 0 }

// String redacts the key.
func (s Secret) String() string { return SecretPrefix + "[redacted]" }

// GoString redacts the key in %#v.
func (s Secret) GoString() string { return "stdwebhook.Secret{[redacted]}" }

// LogValue redacts the key in slog output.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// mac computes the raw HMAC of id.timestamp.body.
func (s Secret) mac(id, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, s.key)
	h.Write([]byte(id))
	h.Write([]byte{'.'})
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// Sign returns the signature header entry "v1,<base64 HMAC-SHA256>" of body
// sent as message id at time ts (truncated to whole seconds).
func Sign(secret Secret, id string, ts time.Time, body []byte) string {
	return signAt(secret, id, formatTimestamp(ts), body)
}

func signAt(secret Secret, id, ts string, body []byte) string {
	return signatureVersion + "," + base64.StdEncoding.EncodeToString(secret.mac(id, ts, body))
}

// SignAll signs with every secret and joins the entries with spaces, the
// webhook-signature value a sender uses while a secret rotates.
func SignAll(secrets []Secret, id string, ts time.Time, body []byte) string {
	t := formatTimestamp(ts)
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = signAt(s, id, t, body)
	}
	return strings.Join(sigs, " ")
}

// SetHeaders sets webhook-id, webhook-timestamp and webhook-signature on h
// for body signed with every one of secrets.
func SetHeaders(h http.Header, secrets []Secret, id string, ts time.Time, body []byte) {
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, formatTimestamp(ts))
	h.Set(HeaderSignature, SignAll(secrets, id, ts, body))
}

func formatTimestamp(ts time.Time) string { return strconv.FormatInt(ts.Unix(), 10) }

// Verify checks that headers carry a valid signature of body by any of
// secrets, and that webhook-timestamp lies within tolerance of now in either
// direction (tolerance <= 0 means DefaultTolerance). Signatures are compared
// in constant time. Every failure wraps ErrVerification; the specific
// sentinels say why, for logs, and must not be echoed to the sender.
func Verify(secrets []Secret, headers http.Header, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secrets) == 0 {
		return ErrNoSecrets
	}
	id := headers.Get(HeaderID)
	tsText := headers.Get(HeaderTimestamp)
	sigHeader := strings.Join(headers.Values(HeaderSignature), " ")
	if id == "" || tsText == "" || sigHeader == "" {
		return ErrMissingHeaders
	}
	if len(sigHeader) > maxSignatureHeader {
		return errSignatureTooLarge
	}
	ts, err := parseTimestamp(tsText)
	if err != nil {
		return err
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare in whole seconds on the Unix scale so no time.Time overflow
	// can occur on an absurd timestamp.
	nowSec, tolSec := now.Unix(), int64(tolerance/time.Second)
	switch {
	case ts < nowSec-tolSec:
		return ErrTimestampTooOld
	case ts > nowSec+tolSec:
		return ErrTimestampTooNew
	}

	expected := make([][]byte, len(secrets))
	for i, s := range secrets {
		expected[i] = s.mac(id, tsText, body)
	}
	matched := 0
	for entry := range strings.FieldsSeq(sigHeader) {
		version, sig, ok := strings.Cut(entry, ",")
		if !ok || version != signatureVersion {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err != nil {
			continue
		}
		// Check every secret without an early exit so the time taken does
		// not tell which secret (or entry) matched.
		for _, want := range expected {
			matched |= subtle.ConstantTimeCompare(got, want)
		}
	}
	if matched != 1 {
		return ErrNoMatchingSig
	}
	return nil
}

// parseTimestamp accepts decimal digits only: strconv alone would also take a
// sign, which the specification's senders never write.
func parseTimestamp(s string) (int64, error) {
	if len(s) > 18 || strings.TrimLeft(s, "0123456789") != "" {
		return 0, ErrInvalidTimestamp
	}
	ts, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, ErrInvalidTimestamp
	}
	return ts, nil
}
