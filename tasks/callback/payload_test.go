package callback_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/taskgate/taskgate/tasks/callback"
)

func TestValidateURL(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://example.com/hooks", true},
		{"http://example.com:8080/hooks?token=x", true},
		{"https://[2606:4700::1]/x", true},
		{"http://127.0.0.1:9000/x", true}, // syntax only: the dial-time guard decides
		{"", false},
		{"example.com/hooks", false},
		{"/hooks", false},
		{"ftp://example.com/x", false},
		{"file:///etc/passwd", false},
		{"javascript:alert(1)", false},
		{"gopher://example.com", false},
		{"https://user:pass@example.com/x", false},
		{"https://user@example.com/x", false},
		{"https:///nohost", false},
		{"https://:443/nohost", false},
		{"https://example.com:0/x", false},
		{"https://example.com:99999/x", false},
		{"https://example.com:http/x", false},
		{"http://exa mple.com/", false},
		{"https://example.com/" + strings.Repeat("a", callback.MaxURLLength), false},
	}
	for _, tc := range tests {
		err := callback.ValidateURL(tc.url)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, callback.ErrInvalidURL)) {
			t.Errorf("ValidateURL(%.60q) = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}

func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{"https://example.com/x", "http://u:p@h/", "http://[::1]:80/", "https://h:0", "mailto:x@y"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		err := callback.ValidateURL(raw)
		if err != nil {
			if !errors.Is(err, callback.ErrInvalidURL) {
				t.Fatalf("error %v does not wrap ErrInvalidURL", err)
			}
			return
		}
		if len(raw) > callback.MaxURLLength || !(strings.HasPrefix(raw, "http://") || strings.HasPrefix(raw, "https://")) {
			t.Fatalf("accepted %q", raw)
		}
	})
}

func TestParseEvents(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   []string
		want callback.Events
		ok   bool
	}{
		{nil, callback.EventCompleted, true},
		{[]string{}, callback.EventCompleted, true},
		{[]string{""}, callback.EventCompleted, true},
		{[]string{"completed"}, callback.EventCompleted, true},
		{[]string{"start"}, callback.EventStart, true},
		{[]string{"start", "completed"}, callback.EventStart | callback.EventCompleted, true},
		{[]string{"start,completed"}, callback.EventStart | callback.EventCompleted, true},
		{[]string{" start , completed "}, callback.EventStart | callback.EventCompleted, true},
		{[]string{"start", "start"}, callback.EventStart, true},
		{[]string{"output"}, 0, false},
		{[]string{"logs"}, 0, false},
		{[]string{"START"}, 0, false},
		{slices.Repeat([]string{"start"}, 100), 0, false},
	}
	for _, tc := range tests {
		got, err := callback.ParseEvents(tc.in)
		if tc.ok != (err == nil) || got != tc.want || (err != nil && !errors.Is(err, callback.ErrUnknownEvent)) {
			t.Errorf("ParseEvents(%q) = %v, %v; want %v ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

func TestEventsNamesRoundTrip(t *testing.T) {
	t.Parallel()
	for _, ev := range []callback.Events{callback.EventStart, callback.EventCompleted, callback.EventStart | callback.EventCompleted} {
		back, err := callback.ParseEvents(ev.Names())
		if err != nil || back != ev {
			t.Errorf("ParseEvents(%q) = %v, %v; want %v", ev.Names(), back, err, ev)
		}
	}
	if s := (callback.EventStart | callback.EventCompleted).String(); s != "start,completed" {
		t.Errorf("String = %q", s)
	}
	if callback.EventCompleted.Has(callback.EventStart) || !callback.DefaultEvents.Has(callback.EventCompleted) {
		t.Error("Has is wrong")
	}
}

func FuzzParseEvents(f *testing.F) {
	for _, s := range []string{"start", "completed", "start,completed", ",,", "output"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ev, err := callback.ParseEvents([]string{s})
		if err != nil {
			if !errors.Is(err, callback.ErrUnknownEvent) {
				t.Fatalf("error %v does not wrap ErrUnknownEvent", err)
			}
			return
		}
		if ev == 0 || ev.String() == "" {
			t.Fatalf("ParseEvents(%q) gave an empty set", s)
		}
	})
}

func TestPayloadType(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"start": callback.TypeRunStarted, "completed": callback.TypeRunCompleted, "request.completed": "request.completed",
	} {
		if got := callback.PayloadType(in); got != want {
			t.Errorf("PayloadType(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEncodePayload(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 22, 13, 4, 5, 6000, time.FixedZone("CET", 3600))
	data := json.RawMessage(`{"name":"run-1","phase":"succeeded"}`)
	b1, err := callback.EncodePayload(callback.TypeRunCompleted, at, data)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"type":"run.completed","timestamp":"2026-11-22T12:04:05.000006Z","data":{"name":"run-1","phase":"succeeded"}}`
	if string(b1) != want {
		t.Fatalf("EncodePayload = %s\nwant            %s", b1, want)
	}
	b2, _ := callback.EncodePayload(callback.TypeRunCompleted, at, data)
	if !bytes.Equal(b1, b2) {
		t.Fatal("EncodePayload is not deterministic")
	}
	if b, err := callback.EncodePayload("x", at, nil); err != nil || !strings.HasSuffix(string(b), `"data":null}`) {
		t.Fatalf("nil data: %s, %v", b, err)
	}
	if _, err := callback.EncodePayload("x", at, json.RawMessage(`{bad`)); err == nil {
		t.Fatal("invalid JSON data: want an error")
	}
}
