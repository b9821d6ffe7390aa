package storable_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/internal/storable"
)

func TestText(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"":                       true,
		"https://example.com/ü":  true,
		"emoji 😀":                true,
		"bad \xff byte":          false,
		"nul \x00 byte":          false,
		"half a rune \xe2\x82":   false,
		"surrogate \xed\xa0\x80": false, // CESU-8 spelling of U+D800
	} {
		require.Equal(t, want, storable.Text(s), "%q", s)
	}
}

func TestJSON(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw   string
		where string
		ok    bool
	}{
		{`{"message":"hi"}`, "", true},
		{`{"message":"\u00fc \ud83d\ude00 \\u0000 \n"}`, "", true}, // an escaped backslash is not an escape
		{`{"message":"\ud800"}`, ".message", false},
		{`{"message":"x\udc00"}`, ".message", false},
		{`{"message":"\u0000"}`, ".message", false},
		{"{\"message\":\"\xff\"}", ".message", false},
		{`{"items":["ok",{"name":"\ud83d"}]}`, ".items[1].name", false},
		{`{"items":["ok","\ud800"]}`, ".items[1]", false},
		{`{"0":{"1":"\u0000"}}`, ".0.1", false},
		{`"\ud800"`, "", false},
		{`{"\ud800":1}`, "", false},
		{`[1,2,"\u0000"]`, "[2]", false},
	}
	for _, tt := range tests {
		where, ok := storable.JSON([]byte(tt.raw))
		require.Equal(t, tt.ok, ok, tt.raw)
		require.Equal(t, tt.where, where, tt.raw)
	}
}

// FuzzJSON: JSON never panics, and what it accepts decodes (with
// encoding/json) to strings that are all Text, and holds U+FFFD only where
// the JSON itself spelled one: encoding/json puts it in place of the
// invalid UTF-8 and lone surrogates that JSON must refuse.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{`{"a":"b"}`, `{"a":"\ud800"}`, `["\u0000"]`, "\"\xff\"", `{"a":[1,{"b":"\udc00"}]}`, `"\\u0000"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		_, ok := storable.JSON(raw)
		if !ok || !json.Valid(raw) {
			return
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return
		}
		spelled := bytes.Contains(raw, []byte("\uFFFD")) || bytes.Contains(bytes.ToLower(raw), []byte(`\ufffd`))
		walk(t, v, spelled)
	})
}

func walk(t *testing.T, v any, replacementAllowed bool) {
	switch v := v.(type) {
	case string:
		if !storable.Text(v) || (!replacementAllowed && strings.ContainsRune(v, utf8.RuneError)) {
			t.Fatalf("accepted JSON decodes to %q", v)
		}
	case []any:
		for _, e := range v {
			walk(t, e, replacementAllowed)
		}
	case map[string]any:
		for k, e := range v {
			walk(t, k, replacementAllowed)
			walk(t, e, replacementAllowed)
		}
	}
}
