package dnslabel

import "strings"

// MaxLength is the longest DNS label (RFC 1035).
const MaxLength = 63

// maxHostname is the longest host name in text form (RFC 1035).
const maxHostname = 253

// Check returns why s is not a DNS label, or "" when it is one.
func Check(s string) string {
	switch {
	case s == "":
		return "empty"
	case len(s) > MaxLength:
		return "longer than 63 characters"
	case s[0] == '-' || s[len(s)-1] == '-':
		return "starts or ends with a dash"
	}
	for _, c := range []byte(s) {
		if !isLabelByte(c) {
			return "only lowercase letters, digits and dashes are allowed"
		}
	}
	return ""
}

// Valid reports whether s is a DNS label.
func Valid(s string) bool { return Check(s) == "" }

// Hostname reports whether s is DNS labels joined by dots, 253 characters
// at most: a host name as a custom domain names it, already lowercased.
func Hostname(s string) bool {
	if s == "" || len(s) > maxHostname {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if !Valid(label) {
			return false
		}
	}
	return true
}

// IsAlnum reports whether c is a lowercase ASCII letter or a digit.
func IsAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// isLabelByte reports whether c may appear in a DNS label.
func isLabelByte(c byte) bool { return IsAlnum(c) || c == '-' }
