package storable

import (
	"bytes"
	"errors"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
)

// Text reports whether s is valid UTF-8 without NUL.
func Text(s string) bool {
	return utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// JSON reports whether every string of the JSON text raw, names and values,
// is Text once decoded: the text is valid UTF-8, has no NUL byte, and no
// escape in it stands for NUL ("\u0000") or a lone surrogate. Where it is
// not, where names the string the way huma names a place in a body, with
// a leading dot or bracket (".items[3].name"), or "" for the top-level
// value. raw that is not JSON at all is for the caller's parser to refuse;
// JSON reports it as not storable at the place the syntax broke.
func JSON(raw []byte) (where string, ok bool) {
	if utf8.Valid(raw) && bytes.IndexByte(raw, 0) < 0 && !bytes.Contains(raw, []byte(`\u`)) {
		return "", true // nothing a decoder could turn into bad text
	}
	d := jsontext.NewDecoder(bytes.NewReader(raw), jsontext.AllowDuplicateNames(true))
	for {
		tok, err := d.ReadToken()
		if errors.Is(err, io.EOF) {
			return "", true
		}
		if err != nil {
			var se *jsontext.SyntacticError
			if errors.As(err, &se) {
				return place(d, se.JSONPointer), false
			}
			return place(d, d.StackPointer()), false
		}
		if tok.Kind() == '"' && strings.IndexByte(tok.String(), 0) >= 0 {
			return place(d, d.StackPointer()), false
		}
	}
}

// place spells a JSON Pointer within d's current nesting as huma does:
// ".name" in an object, "[3]" in an array.
func place(d *jsontext.Decoder, p jsontext.Pointer) string {
	var b strings.Builder
	level := 0
	for tok := range p.Tokens() {
		level++
		kind := jsontext.Kind('{')
		if level <= d.StackDepth() {
			kind, _ = d.StackIndex(level)
		}
		if _, err := strconv.ParseUint(tok, 10, 64); kind == '[' && err == nil {
			b.WriteString("[" + tok + "]")
			continue
		}
		b.WriteString("." + tok)
	}
	return b.String()
}
