package login

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzSafeNext: a return path safeNext accepts, resolved against the
// origin as a browser resolves a Location (with a backslash read as a
// slash, as browsers do), never leaves the origin.
func FuzzSafeNext(f *testing.F) {
	for _, s := range []string{"/console", "/me?x=1#y", "//evil.example", "/\\evil.example", "https://evil.example",
		"javascript:alert(1)", "/%2F/evil", "/\t/evil", "", "me", "/.//evil", "/..//evil"} {
		f.Add(s)
	}
	base, _ := url.Parse("https://gpu.example.com/auth/login")
	f.Fuzz(func(t *testing.T, next string) {
		got, ok := safeNext(next)
		if !ok {
			return
		}
		u, err := url.Parse(strings.ReplaceAll(got, "\\", "/"))
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", next, err)
		}
		if r := base.ResolveReference(u); r.Host != base.Host || r.Scheme != base.Scheme {
			t.Fatalf("accepted %q, which leads to %s", next, r)
		}
	})
}
