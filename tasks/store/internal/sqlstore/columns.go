package sqlstore

import (
	"encoding/json"
	"strings"
	"time"
	"unicode/utf8"
)

func nanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func fromNanos(n int64) time.Time {
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func timePtr(n int64) *time.Time {
	if n == 0 {
		return nil
	}
	t := fromNanos(n)
	return &t
}

func bytesOrNil(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return b
}

func jsonText(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	return jsonText(l)
}

func parseList(s string) []string {
	if s == "" {
		return nil
	}
	var l []string
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return nil
	}
	return l
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// cleanText makes s storable as text in both databases: invalid UTF-8 and
// NUL bytes, which PostgreSQL refuses (and which would fail a whole batch
// with them), become U+FFFD. Task errors and log lines can hold anything a
// subprocess printed.
func cleanText(s string) string {
	if utf8.ValidString(s) && !strings.ContainsRune(s, 0) {
		return s
	}
	return strings.ReplaceAll(strings.ToValidUTF8(s, "\uFFFD"), "\x00", "\uFFFD")
}
