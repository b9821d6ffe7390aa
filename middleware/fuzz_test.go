package middleware_test

import (
	"bufio"
	"errors"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/middleware"
)

// token68 is RFC 7235's token68, written independently of the extractor.
var token68 = regexp.MustCompile(`^[A-Za-z0-9\-._~+/]+=*$`)

func FuzzBearerExtractor(f *testing.F) {
	e := middleware.BearerExtractor()
	f.Fuzz(func(t *testing.T, value string, twice bool) {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.Header["Authorization"] = []string{value}
		if twice {
			r.Header["Authorization"] = append(r.Header["Authorization"], value)
		}
		c, found, err := e.Extract(r)
		scheme, token, _ := strings.Cut(value, " ")
		token = strings.TrimLeft(token, " ")
		switch {
		case err != nil:
			if !errors.Is(err, middleware.ErrMalformedCredentials) || found {
				t.Fatalf("error %v (found=%v) does not wrap ErrMalformedCredentials", err, found)
			}
			if len(token) >= 20 && strings.Contains(err.Error(), token) {
				t.Fatalf("error quotes the token: %v", err)
			}
		case found:
			if twice || !strings.EqualFold(scheme, "bearer") || c.Value != token || c.Source != middleware.SourceBearer {
				t.Fatalf("found %v in %q", c, value)
			}
			if !token68.MatchString(c.Value) || len(c.Value) > middleware.MaxCredentialSize {
				t.Fatalf("accepted a token outside token68 or over the limit: %q", c.Value)
			}
		default:
			if twice || strings.EqualFold(scheme, "bearer") {
				t.Fatalf("%q (twice=%v) neither found nor refused", value, twice)
			}
		}
	})
}

// FuzzExtractors parses a raw request, as the server would, and runs every
// extractor on it.
func FuzzExtractors(f *testing.F) {
	extractors := []middleware.Extractor{
		middleware.BearerExtractor(),
		middleware.KeyExtractor(),
		middleware.CookieExtractor(""),
		middleware.HeaderExtractor("X-Api-Key"),
		middleware.KeySecretExtractor("", ""),
	}
	f.Fuzz(func(t *testing.T, headers string) {
		raw := "GET / HTTP/1.1\r\nHost: example.com\r\n" + headers + "\r\n\r\n"
		r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return
		}
		for _, e := range extractors {
			c, found, err := e.Extract(r)
			if err != nil {
				if !errors.Is(err, middleware.ErrMalformedCredentials) || found {
					t.Fatalf("%T: error %v does not wrap ErrMalformedCredentials", e, err)
				}
				continue
			}
			if !found {
				continue
			}
			for _, v := range []string{c.Value, c.Secret} {
				if len(v) > middleware.MaxCredentialSize || strings.ContainsFunc(v, func(r rune) bool { return r <= ' ' || r >= 0x7f }) {
					t.Fatalf("%T accepted %q", e, v)
				}
			}
			if c.Value == "" || (c.Source == middleware.SourceKeySecret) == (c.Secret == "") {
				t.Fatalf("%T: inconsistent credentials %v", e, c)
			}
		}
	})
}

func FuzzParseStaticTokens(f *testing.F) {
	f.Fuzz(func(t *testing.T, spec string) {
		s, err := middleware.ParseStaticTokens(spec)
		entries := strings.Split(strings.TrimSpace(spec), ",")
		if err != nil {
			if !errors.Is(err, middleware.ErrInvalidStaticTokens) {
				t.Fatalf("error %v does not wrap ErrInvalidStaticTokens", err)
			}
			// No error message has a run of 16 non-space bytes, so any
			// such token found in it was quoted.
			for _, e := range entries {
				tok, _, _ := cutLast(strings.TrimSpace(e), "=")
				if len(tok) >= middleware.MinStaticTokenLength && !strings.Contains(tok, " ") && strings.Contains(err.Error(), tok) {
					t.Fatalf("error quotes a token: %v", err)
				}
			}
			return
		}
		if s.Len() != len(entries) {
			t.Fatalf("%d entries parsed into %d tokens", len(entries), s.Len())
		}
		for _, e := range entries {
			tok, rest, _ := cutLast(strings.TrimSpace(e), "=")
			subject, _, _ := strings.Cut(rest, ":")
			id, err := s.Authenticate(t.Context(), middleware.Credentials{Value: tok, Source: middleware.SourceBearer})
			if err != nil || id.Subject != subject {
				t.Fatalf("token of entry %q: identity %+v, error %v", e, id, err)
			}
		}
	})
}

func cutLast(s, sep string) (before, after string, found bool) {
	i := strings.LastIndex(s, sep)
	if i < 0 {
		return s, "", false
	}
	return s[:i], s[i+len(sep):], true
}
