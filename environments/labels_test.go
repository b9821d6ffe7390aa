package environments

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

func TestDefaultLabel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		app, function, want string
	}{
		{"text_to_speech", "flask_app", "text-to-speech-flask-app"},
		{"ECorp", "Main", "ecorp-main"},
		{"my  app!!", "__fn__", "my-app-fn"},
		{"app", "", "app"},
		{"", "fn", "fn"},
		{"--", "--", ""},
		{"Déjà vu", "x", "d-j-vu-x"},
		{"v2.0", "run", "v2-0-run"},
	}
	for _, tt := range tests {
		if got := DefaultLabel(tt.app, tt.function); got != tt.want {
			t.Errorf("DefaultLabel(%q, %q) = %q, want %q", tt.app, tt.function, got, tt.want)
		}
	}
}

func TestValidateLabel(t *testing.T) {
	t.Parallel()
	tests := []struct {
		label string
		ok    bool
	}{
		{"speechify", true},
		{"a", true},
		{"v2-api", true},
		{strings.Repeat("a", 63), true},
		{strings.Repeat("a", 64), false},
		{"", false},
		{"Speechify", false}, // validated, not normalized
		{"text_to_speech", false},
		{"-api", false},
		{"api-", false},
		{"a--b", false},
		{"api.v2", false},
		{"ápi", false},
	}
	for _, tt := range tests {
		err := ValidateLabel(tt.label)
		if (err == nil) != tt.ok {
			t.Errorf("ValidateLabel(%q) = %v, want ok=%v", tt.label, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrInvalidLabel) {
			t.Errorf("ValidateLabel(%q) = %v, not ErrInvalidLabel", tt.label, err)
		}
	}
}

func TestSubdomain(t *testing.T) {
	t.Parallel()
	b58 := strings.Repeat("b", 58)
	tests := []struct {
		name  string
		u     URLSettings
		label string
		want  string
	}{
		{"workspace and suffix", URLSettings{Workspace: "ECorp", EnvSuffix: "prod"}, "text-to-speech-flask-app",
			"ecorp-prod--text-to-speech-flask-app"},
		{"no suffix", URLSettings{Workspace: "ecorp"}, "speechify", "ecorp--speechify"},
		{"dev mode", URLSettings{Workspace: "ecorp", EnvSuffix: "prod", Dev: true}, "speechify", "ecorp-prod--speechify-dev"},
		{"no source", URLSettings{}, "speechify", "speechify"},
		{"workspace normalized", URLSettings{Workspace: "E_Corp Inc."}, "x", "e-corp-inc--x"},
		{"exactly 63 kept", URLSettings{Workspace: "ws"}, "a" + b58, "ws--a" + b58},
		// sha256("ws--a" + b58 + "c") starts 059725.
		{"64 cut", URLSettings{Workspace: "ws"}, "a" + b58 + "c", ("ws--a" + b58)[:56] + "-059725"},
		// -dev counts: 63 + 4 is cut, hashed with the suffix included.
		{"dev pushes over", URLSettings{Workspace: "ws", Dev: true}, "a" + b58, ("ws--a" + b58)[:56] + "-9dbd6e"},
		// The reference page's own example, cut by the rule it states (its
		// printed result does not follow that rule):
		// sha256("ecorp--text-to-speech-really-really-realllly-long-function-name-dev")
		// starts d71e87.
		{"reference example", URLSettings{Workspace: "ecorp", Dev: true}, "text-to-speech-really-really-realllly-long-function-name",
			"ecorp--text-to-speech-really-really-realllly-long-functi-d71e87"},
		{"suffix counts", URLSettings{Workspace: "ecorp", EnvSuffix: "prod"}, "text-to-speech-flask-app-with-a-really-really-long-name",
			"ecorp-prod--text-to-speech-flask-app-with-a-really-reall-6657bf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := Subdomain(tt.u, tt.label)
			if got != tt.want {
				t.Errorf("Subdomain = %q, want %q", got, tt.want)
			}
			if len(got) > MaxLabelLength {
				t.Errorf("Subdomain has %d characters", len(got))
			}
		})
	}
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// fuzzLabel turns arbitrary fuzz input into a label Subdomain accepts: the
// input itself when it is a valid user label, else its default label.
func fuzzLabel(s string) string {
	if ValidateLabel(s) == nil {
		return s
	}
	return DefaultLabel(s, "")
}

// FuzzSubdomain checks that a subdomain is always a DNS label of at most 63
// characters, the same for the same input, and different for two different
// overlong inputs.
func FuzzSubdomain(f *testing.F) {
	f.Add("ecorp", "prod", "text-to-speech-flask-app", true, "ecorp", "", "speechify", false)
	f.Add("ecorp", "", "text-to-speech-really-really-realllly-long-function-name", true,
		"ecorp", "", "text-to-speech-really-really-realllly-long-function-nam", true)
	f.Add("E Corp", "Main", "Déjà_vu", false, "", "", "x", false)
	f.Add(strings.Repeat("w", 70), "s", "l", true, strings.Repeat("w", 70), "s", "m", true)
	f.Fuzz(func(t *testing.T, ws1, sfx1, l1 string, dev1 bool, ws2, sfx2, l2 string, dev2 bool) {
		label1, label2 := fuzzLabel(l1), fuzzLabel(l2)
		if label1 == "" || label2 == "" {
			return // no letter or digit to build a label from
		}
		u1 := URLSettings{Workspace: ws1, EnvSuffix: sfx1, Dev: dev1}
		u2 := URLSettings{Workspace: ws2, EnvSuffix: sfx2, Dev: dev2}
		got1 := Subdomain(u1, label1)
		if !dnsLabel.MatchString(got1) {
			t.Fatalf("Subdomain(%+v, %q) = %q: not a DNS label", u1, label1, got1)
		}
		if again := Subdomain(u1, label1); again != got1 {
			t.Fatalf("Subdomain(%+v, %q) gave %q then %q", u1, label1, got1, again)
		}
		got2 := Subdomain(u2, label2)
		long1, long2 := untruncated(u1, label1), untruncated(u2, label2)
		if len(long1) > MaxLabelLength && len(long2) > MaxLabelLength && long1 != long2 && got1 == got2 {
			t.Fatalf("overlong %q and %q both became %q", long1, long2, got1)
		}
	})
}

// untruncated is the subdomain before the 63-character cut, built
// independently of Subdomain.
func untruncated(u URLSettings, label string) string {
	var parts []string
	for _, p := range []string{DefaultLabel(u.Workspace, ""), DefaultLabel(u.EnvSuffix, "")} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	s := label
	if len(parts) > 0 {
		s = strings.Join(parts, "-") + "--" + label
	}
	if u.Dev {
		s += "-dev"
	}
	return s
}

func ExampleSubdomain() {
	u := URLSettings{Workspace: "ECorp", EnvSuffix: "prod"}
	fmt.Println(Subdomain(u, DefaultLabel("text_to_speech", "flask_app")))
	u.Dev = true
	fmt.Println(Subdomain(u, "speechify"))
	// Over 63 characters: 56 kept, then the start of the SHA-256 of all 67.
	long := DefaultLabel("text_to_speech", "really_really_realllly_long_function_name")
	fmt.Println(Subdomain(URLSettings{Workspace: "ecorp", Dev: true}, long))
	// Output:
	// ecorp-prod--text-to-speech-flask-app
	// ecorp-prod--speechify-dev
	// ecorp--text-to-speech-really-really-realllly-long-functi-d71e87
}
