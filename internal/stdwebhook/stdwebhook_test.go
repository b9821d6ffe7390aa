package stdwebhook_test

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/internal/stdwebhook"
)

// The test vector of the Standard Webhooks specification.
const (
	vecSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vecID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vecTS     = 1614265330
	vecBody   = `{"test": 2432232314}`
	vecSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func mustSecret(t testing.TB, s string) stdwebhook.Secret {
	t.Helper()
	sec, err := stdwebhook.ParseSecret(s)
	if err != nil {
		t.Fatalf("ParseSecret: %v", err)
	}
	return sec
}

func TestSignSpecVector(t *testing.T) {
	t.Parallel()
	sec := mustSecret(t, vecSecret)
	got := stdwebhook.Sign(sec, vecID, time.Unix(vecTS, 0), []byte(vecBody))
	if got != vecSig {
		t.Fatalf("Sign = %q, want %q", got, vecSig)
	}

	h := http.Header{}
	stdwebhook.SetHeaders(h, []stdwebhook.Secret{sec}, vecID, time.Unix(vecTS, 0), []byte(vecBody))
	for name, want := range map[string]string{"Webhook-Id": vecID, "Webhook-Timestamp": "1614265330", "Webhook-Signature": vecSig} {
		if got := h.Get(name); got != want {
			t.Errorf("%s = %q, want %q", name, got, want)
		}
	}
	if err := stdwebhook.Verify([]stdwebhook.Secret{sec}, h, []byte(vecBody), time.Unix(vecTS, 0), 0); err != nil {
		t.Fatalf("Verify of the spec vector: %v", err)
	}
}

// vectorHeaders returns the headers of the spec vector.
func vectorHeaders() http.Header {
	h := http.Header{}
	h.Set(stdwebhook.HeaderID, vecID)
	h.Set(stdwebhook.HeaderTimestamp, fmt.Sprint(vecTS))
	h.Set(stdwebhook.HeaderSignature, vecSig)
	return h
}

func TestVerify(t *testing.T) {
	t.Parallel()
	good := mustSecret(t, vecSecret)
	other := stdwebhook.NewSecret()
	at := time.Unix(vecTS, 0)

	tests := []struct {
		name    string
		secrets []stdwebhook.Secret
		headers func(http.Header)
		body    string
		now     time.Time
		want    error // nil means verification succeeds
	}{
		{name: "valid", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at},
		{name: "valid at +5m edge", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at.Add(5 * time.Minute)},
		{name: "valid at -5m edge", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at.Add(-5 * time.Minute)},
		{name: "second of two secrets matches", secrets: []stdwebhook.Secret{other, good}, body: vecBody, now: at},
		{
			name: "one of several signatures matches", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at,
			headers: func(h http.Header) {
				h.Set(stdwebhook.HeaderSignature, "v1a,abc v1,AAAA v1,"+strings.Repeat("A", 44)+" "+vecSig)
			},
		},
		{
			name: "signature split over two header lines", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at,
			headers: func(h http.Header) {
				h.Set(stdwebhook.HeaderSignature, "v1,AAAA")
				h.Add(stdwebhook.HeaderSignature, vecSig)
			},
		},
		{name: "tampered body", secrets: []stdwebhook.Secret{good}, body: `{"test": 2432232315}`, now: at, want: stdwebhook.ErrNoMatchingSig},
		{name: "body with trailing newline", secrets: []stdwebhook.Secret{good}, body: vecBody + "\n", now: at, want: stdwebhook.ErrNoMatchingSig},
		{name: "wrong secret", secrets: []stdwebhook.Secret{other}, body: vecBody, now: at, want: stdwebhook.ErrNoMatchingSig},
		{name: "stale timestamp", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at.Add(5*time.Minute + time.Second), want: stdwebhook.ErrTimestampTooOld},
		{name: "future timestamp", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at.Add(-5*time.Minute - time.Second), want: stdwebhook.ErrTimestampTooNew},
		{
			name: "tampered id", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at, want: stdwebhook.ErrNoMatchingSig,
			headers: func(h http.Header) { h.Set(stdwebhook.HeaderID, "msg_other") },
		},
		{
			name: "tampered timestamp", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at, want: stdwebhook.ErrNoMatchingSig,
			headers: func(h http.Header) { h.Set(stdwebhook.HeaderTimestamp, fmt.Sprint(vecTS+1)) },
		},
		{
			name: "missing id", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at, want: stdwebhook.ErrMissingHeaders,
			headers: func(h http.Header) { h.Del(stdwebhook.HeaderID) },
		},
		{
			name: "missing timestamp", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at, want: stdwebhook.ErrMissingHeaders,
			headers: func(h http.Header) { h.Del(stdwebhook.HeaderTimestamp) },
		},
		{
			name: "missing signature", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at, want: stdwebhook.ErrMissingHeaders,
			headers: func(h http.Header) { h.Del(stdwebhook.HeaderSignature) },
		},
		{
			name: "malformed timestamp", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at, want: stdwebhook.ErrInvalidTimestamp,
			headers: func(h http.Header) { h.Set(stdwebhook.HeaderTimestamp, "2021-02-26T00:00:00Z") },
		},
		{
			name: "unknown version only", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at, want: stdwebhook.ErrNoMatchingSig,
			headers: func(h http.Header) { h.Set(stdwebhook.HeaderSignature, strings.Replace(vecSig, "v1,", "v2,", 1)) },
		},
		{
			name: "oversized signature header", secrets: []stdwebhook.Secret{good}, body: vecBody, now: at, want: stdwebhook.ErrVerification,
			headers: func(h http.Header) { h.Set(stdwebhook.HeaderSignature, strings.Repeat("v1,AAAA ", 1000)+vecSig) },
		},
		{name: "no secrets", body: vecBody, now: at, want: stdwebhook.ErrNoSecrets},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := vectorHeaders()
			if tc.headers != nil {
				tc.headers(h)
			}
			err := stdwebhook.Verify(tc.secrets, h, []byte(tc.body), tc.now, stdwebhook.DefaultTolerance)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Verify = %v, want %v", err, tc.want)
			}
		})
	}
}

func TestVerifyErrorsWrapVerification(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		stdwebhook.ErrMissingHeaders, stdwebhook.ErrInvalidTimestamp, stdwebhook.ErrTimestampTooOld,
		stdwebhook.ErrTimestampTooNew, stdwebhook.ErrNoMatchingSig,
	} {
		if !errors.Is(err, stdwebhook.ErrVerification) {
			t.Errorf("%v does not wrap ErrVerification", err)
		}
	}
}

func TestSignAllRotation(t *testing.T) {
	t.Parallel()
	oldS, newS := stdwebhook.NewSecret(), stdwebhook.NewSecret()
	body := []byte(`{"type":"run.completed"}`)
	now := time.Unix(1_800_000_000, 0)
	h := http.Header{}
	stdwebhook.SetHeaders(h, []stdwebhook.Secret{oldS, newS}, "msg_1", now, body)

	entries := strings.Fields(h.Get(stdwebhook.HeaderSignature))
	want := []string{stdwebhook.Sign(oldS, "msg_1", now, body), stdwebhook.Sign(newS, "msg_1", now, body)}
	if !slices.Equal(entries, want) {
		t.Fatalf("signature entries = %q, want %q", entries, want)
	}

	// A receiver that knows only one side of the rotation accepts it.
	for i, s := range []stdwebhook.Secret{oldS, newS} {
		if err := stdwebhook.Verify([]stdwebhook.Secret{s}, h, body, now, 0); err != nil {
			t.Errorf("receiver with secret %d: %v", i, err)
		}
	}
	if err := stdwebhook.Verify([]stdwebhook.Secret{stdwebhook.NewSecret()}, h, body, now, 0); !errors.Is(err, stdwebhook.ErrNoMatchingSig) {
		t.Errorf("receiver with an unrelated secret: %v, want ErrNoMatchingSig", err)
	}
}

func TestParseSecret(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		ok   bool
	}{
		{"spec vector", vecSecret, true},
		{"without prefix", strings.TrimPrefix(vecSecret, "whsec_"), true},
		{"generated", stdwebhook.NewSecret().Encode(), true},
		{"unpadded", "whsec_" + strings.TrimRight(stdwebhook.NewSecret().Encode()[6:], "="), true},
		{"empty", "", false},
		{"prefix only", "whsec_", false},
		{"not base64", "whsec_!!!not-base64!!!", false},
		{"too short", "whsec_c2hvcnQ=", false},
		{"too long", "whsec_" + strings.Repeat("QUFB", 22), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := stdwebhook.ParseSecret(tc.in)
			if tc.ok != (err == nil) || (err != nil && !errors.Is(err, stdwebhook.ErrInvalidSecret)) {
				t.Fatalf("ParseSecret(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			}
		})
	}
}

func TestSecretRoundTripAndRedaction(t *testing.T) {
	t.Parallel()
	s := stdwebhook.NewSecret()
	enc := s.Encode()
	if !strings.HasPrefix(enc, "whsec_") {
		t.Fatalf("Encode = %q, want whsec_ prefix", enc)
	}
	if back := mustSecret(t, enc); back.Encode() != enc {
		t.Fatalf("round trip changed the secret")
	}
	if enc == stdwebhook.NewSecret().Encode() {
		t.Fatal("two generated secrets are equal")
	}

	key := enc[len("whsec_"):]
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("cfg", "secret", s)
	for _, printed := range []string{fmt.Sprint(s), fmt.Sprintf("%v %+v %#v %s", s, s, s, s), logged.String()} {
		if strings.Contains(printed, key) {
			t.Errorf("printed form leaks the key: %s", printed)
		}
	}
}

func TestParseSecretsNamesPosition(t *testing.T) {
	t.Parallel()
	_, err := stdwebhook.ParseSecrets(vecSecret, "whsec_bad!")
	if !errors.Is(err, stdwebhook.ErrInvalidSecret) || !strings.Contains(err.Error(), "secret 1") || strings.Contains(err.Error(), "bad!") {
		t.Fatalf("ParseSecrets error = %v, want ErrInvalidSecret naming position 1 without the text", err)
	}
}

func FuzzVerify(f *testing.F) {
	f.Add(vecID, fmt.Sprint(vecTS), vecSig, []byte(vecBody))
	f.Add("", "", "", []byte(nil))
	f.Add("msg", "-1", "v1,", []byte("x"))
	f.Add("msg", "99999999999999999999", "v1,==== v1a,xyz", []byte("{}"))
	sec := mustSecret(f, vecSecret)
	secrets := []stdwebhook.Secret{sec}
	now := time.Unix(vecTS, 0)
	f.Fuzz(func(t *testing.T, id, ts, sig string, body []byte) {
		h := http.Header{}
		h.Set(stdwebhook.HeaderID, id)
		h.Set(stdwebhook.HeaderTimestamp, ts)
		h.Set(stdwebhook.HeaderSignature, sig)
		err := stdwebhook.Verify(secrets, h, body, now, 0)
		if err != nil && !errors.Is(err, stdwebhook.ErrVerification) {
			t.Fatalf("error %v does not wrap ErrVerification", err)
		}
		if err == nil {
			// Only a genuine signature may pass: re-signing must reproduce
			// one of the entries.
			want := stdwebhook.Sign(sec, id, time.Unix(mustInt(t, ts), 0), body)
			if !strings.Contains(" "+sig+" ", " "+want+" ") && !strings.Contains(sig, want) {
				t.Fatalf("accepted %q without the genuine signature %q", sig, want)
			}
		}
	})
}

func FuzzParseSecret(f *testing.F) {
	f.Add(vecSecret)
	f.Add("whsec_")
	f.Add("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	f.Add("whsec_====")
	f.Fuzz(func(t *testing.T, s string) {
		sec, err := stdwebhook.ParseSecret(s)
		if err != nil {
			if !errors.Is(err, stdwebhook.ErrInvalidSecret) {
				t.Fatalf("error %v does not wrap ErrInvalidSecret", err)
			}
			return
		}
		again, err := stdwebhook.ParseSecret(sec.Encode())
		if err != nil || again.Encode() != sec.Encode() {
			t.Fatalf("Encode of a parsed secret does not round-trip: %v", err)
		}
	})
}

func mustInt(t *testing.T, s string) int64 {
	t.Helper()
	var n int64
	_, err := fmt.Sscan(s, &n)
	if err != nil {
		t.Fatalf("accepted a timestamp that is not an integer: %q", s)
	}
	return n
}
