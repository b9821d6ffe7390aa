package dnslabel

import (
	"regexp"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		s, why string
	}{
		{"a", ""},
		{"v2-api", ""},
		{"a--b", ""}, // a label; URL labels refuse "--" for their own reason
		{strings.Repeat("a", 63), ""},
		{"", "empty"},
		{strings.Repeat("a", 64), "longer than 63 characters"},
		{"-api", "starts or ends with a dash"},
		{"api-", "starts or ends with a dash"},
		{"Api", "only lowercase letters, digits and dashes are allowed"},
		{"api.v2", "only lowercase letters, digits and dashes are allowed"},
		{"a_b", "only lowercase letters, digits and dashes are allowed"},
		{"ápi", "only lowercase letters, digits and dashes are allowed"},
	}
	for _, tt := range tests {
		if got := Check(tt.s); got != tt.why {
			t.Errorf("Check(%q) = %q, want %q", tt.s, got, tt.why)
		}
	}
}

func TestHostname(t *testing.T) {
	t.Parallel()
	label := strings.Repeat("a", 63)
	tests := []struct {
		s  string
		ok bool
	}{
		{"example.com", true},
		{"xn--bcher-kva.example", true},
		{"localhost", true},
		{strings.Join([]string{label, label, label, strings.Repeat("a", 61)}, "."), true}, // 253
		{strings.Join([]string{label, label, label, strings.Repeat("a", 62)}, "."), false},
		{"", false},
		{"a..b", false},
		{".a", false},
		{"a.", false},
		{"-a.b", false},
		{"a_b.c", false},
		{"A.b", false},
	}
	for _, tt := range tests {
		if got := Hostname(tt.s); got != tt.ok {
			t.Errorf("Hostname(%q) = %v, want %v", tt.s, got, tt.ok)
		}
	}
}

// labelRE is the rule as tasks.ValidName wrote it before this package.
var labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// FuzzValid checks Valid against the regular expression of a DNS label.
func FuzzValid(f *testing.F) {
	for _, s := range []string{"a", "a-b", "-a", "a-", "", "A", "a.b", strings.Repeat("z", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if Valid(s) != labelRE.MatchString(s) {
			t.Fatalf("Valid(%q) = %v, the regular expression says %v", s, Valid(s), !Valid(s))
		}
	})
}
