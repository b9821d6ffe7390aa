package environments

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/taskgate/taskgate/internal/dnslabel"
)

// MaxLabelLength is the longest DNS label (RFC 1035), and so the longest
// subdomain an environment gets.
const MaxLabelLength = dnslabel.MaxLength

// ErrInvalidLabel is the error for a user-given URL label that is not a
// lowercase DNS label.
var ErrInvalidLabel = errors.New("invalid URL label")

// DefaultLabel is the URL label of a function when the user gave none,
// as Modal builds it: "<app>-<function>", each part normalized to
// lowercase letters, digits and single dashes ("text_to_speech",
// "flask_app" -> "text-to-speech-flask-app"). An empty part is left out.
// The result is empty only when neither part has a letter or digit.
func DefaultLabel(app, function string) string {
	return joinNonEmpty(slug(app), slug(function))
}

// ValidateLabel checks a user-given label. Unlike default labels it is not
// normalized: it must already be a DNS label (lowercase letters, digits and
// dashes, at most 63 characters, neither starting nor ending with a dash;
// see internal/dnslabel). A double dash is refused too, since "--"
// separates the source from the label in a subdomain and would make the
// subdomain ambiguous.
func ValidateLabel(label string) error {
	why := dnslabel.Check(label)
	if why == "" && strings.Contains(label, "--") {
		why = `contains "--", the separator of the source and the label`
	}
	if why != "" {
		return fmt.Errorf("%w %q: %s", ErrInvalidLabel, label, why)
	}
	return nil
}

// Subdomain is the DNS label under the base domain that serves label:
// "<workspace>[-<env suffix>]--<label>", plus "-dev" in development mode.
// Workspace and suffix are normalized like default labels; when both are
// empty the subdomain is the label alone. label must be a DefaultLabel
// result or pass ValidateLabel.
//
// A subdomain longer than 63 characters (the "-dev" suffix included) becomes
// its first 56 characters, a dash, and the first 6 hex digits of the
// SHA-256 of the whole overlong subdomain: 63 characters, still distinct
// for distinct overlong inputs.
func Subdomain(u URLSettings, label string) string {
	full := label
	if source := joinNonEmpty(slug(u.Workspace), slug(u.EnvSuffix)); source != "" {
		full = source + "--" + label
	}
	if u.Dev {
		full += "-dev"
	}
	return truncateLabel(full)
}

// truncateLabel applies Modal's cut to a label longer than 63 characters.
func truncateLabel(full string) string {
	const keep = 56 // + "-" + 6 hex digits = 63
	if len(full) <= MaxLabelLength {
		return full
	}
	sum := sha256.Sum256([]byte(full))
	return full[:keep] + "-" + hex.EncodeToString(sum[:3])
}

// slug lowercases s and turns every run of other characters than ASCII
// letters and digits into one dash, with none at either end.
func slug(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	dash := false
	for _, c := range []byte(strings.ToLower(s)) {
		if dnslabel.IsAlnum(c) {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteByte(c)
			continue
		}
		dash = true
	}
	return b.String()
}

func joinNonEmpty(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	default:
		return a + "-" + b
	}
}
