package middleware_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
)

type extractCase struct {
	name    string
	header  http.Header
	want    middleware.Credentials
	found   bool
	wantErr bool
}

func runExtractCases(t *testing.T, e middleware.Extractor, tests []extractCase) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Header = tt.header
			got, found, err := e.Extract(r)
			if tt.wantErr {
				require.ErrorIs(t, err, middleware.ErrMalformedCredentials)
			} else {
				require.NoError(t, err)
			}
			require.Equal(t, tt.found, found)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestBearerExtractor(t *testing.T) {
	t.Parallel()
	tok := func(v string) middleware.Credentials {
		return middleware.Credentials{Scheme: "Bearer", Value: v, Source: middleware.SourceBearer, Name: "Authorization"}
	}
	auth := func(vs ...string) http.Header { return http.Header{"Authorization": vs} }
	max := strings.Repeat("a", middleware.MaxCredentialSize)
	runExtractCases(t, middleware.BearerExtractor(), []extractCase{
		{name: "none", header: http.Header{}},
		{name: "plain", header: auth("Bearer abc.def-ghi_jkl~mno+pqr/stu"), want: tok("abc.def-ghi_jkl~mno+pqr/stu"), found: true},
		{name: "lower-case scheme", header: auth("bearer abc"), want: tok("abc"), found: true},
		{name: "upper-case scheme", header: auth("BEARER abc"), want: tok("abc"), found: true},
		{name: "padding", header: auth("Bearer abc=="), want: tok("abc=="), found: true},
		{name: "two spaces", header: auth("Bearer  abc"), want: tok("abc"), found: true},
		{name: "exactly the size limit", header: auth("Bearer " + max), want: tok(max), found: true},
		{name: "basic scheme is not ours", header: auth("Basic YTpi")},
		{name: "bearer prefix of another scheme", header: auth("Bearerabc")},
		{name: "empty", header: auth("Bearer "), wantErr: true},
		{name: "scheme only", header: auth("Bearer"), wantErr: true},
		{name: "two headers", header: auth("Bearer abc", "Bearer abc"), wantErr: true},
		{name: "one bearer one basic", header: auth("Basic YTpi", "Bearer abc"), wantErr: true},
		{name: "over the size limit", header: auth("Bearer " + max + "a"), wantErr: true},
		{name: "padding in the middle", header: auth("Bearer ab=c"), wantErr: true},
		{name: "only padding", header: auth("Bearer =="), wantErr: true},
		{name: "trailing space", header: auth("Bearer abc "), wantErr: true},
		{name: "inner space", header: auth("Bearer abc def"), wantErr: true},
		{name: "tab", header: auth("Bearer abc\tdef"), wantErr: true},
		{name: "control byte", header: auth("Bearer abc\x01def"), wantErr: true},
		{name: "NUL", header: auth("Bearer abc\x00"), wantErr: true},
		{name: "non-ASCII", header: auth("Bearer abcé"), wantErr: true},
		{name: "high byte", header: auth("Bearer abc\xff"), wantErr: true},
		{name: "quote", header: auth(`Bearer "abc"`), wantErr: true},
	})
}

func TestKeyExtractor(t *testing.T) {
	t.Parallel()
	key := func(v string) middleware.Credentials {
		return middleware.Credentials{Scheme: "Key", Value: v, Source: middleware.SourceBearer, Name: "Authorization"}
	}
	auth := func(vs ...string) http.Header { return http.Header{"Authorization": vs} }
	max := strings.Repeat("a", middleware.MaxCredentialSize)
	runExtractCases(t, middleware.KeyExtractor(), []extractCase{
		{name: "none", header: http.Header{}},
		{name: "token", header: auth("Key abc.def"), want: key("abc.def"), found: true},
		{name: "fal's id:secret", header: auth("Key 1a2b:c3d4"), want: key("1a2b:c3d4"), found: true},
		{name: "lower-case scheme", header: auth("key abc"), want: key("abc"), found: true},
		{name: "exactly the size limit", header: auth("Key " + max), want: key(max), found: true},
		{name: "bearer is not ours", header: auth("Bearer abc")},
		{name: "key prefix of another scheme", header: auth("Keyabc")},
		{name: "empty", header: auth("Key "), wantErr: true},
		{name: "two headers", header: auth("Key abc", "Key abc"), wantErr: true},
		{name: "space inside", header: auth("Key a b"), wantErr: true},
		{name: "over the size limit", header: auth("Key " + max + "a"), wantErr: true},
		{name: "non-ASCII", header: auth("Key ab\u00e9"), wantErr: true},
	})
}

func TestCookieExtractor(t *testing.T) {
	t.Parallel()
	c := func(v string) middleware.Credentials {
		return middleware.Credentials{Value: v, Source: middleware.SourceCookie, Name: "sess"}
	}
	cookie := func(v string) http.Header { return http.Header{"Cookie": {v}} }
	runExtractCases(t, middleware.CookieExtractor("sess"), []extractCase{
		{name: "none", header: http.Header{}},
		{name: "other cookie", header: cookie("theme=dark")},
		{name: "found", header: cookie("theme=dark; sess=abc.def"), want: c("abc.def"), found: true},
		{name: "quoted", header: cookie(`sess="abc"`), want: c("abc"), found: true},
		{name: "empty counts as absent", header: cookie("sess=")},
		{name: "two cookies", header: cookie("sess=a; sess=b"), wantErr: true},
		{name: "two cookie headers", header: http.Header{"Cookie": {"sess=a", "sess=b"}}, wantErr: true},
		{name: "over the size limit", header: cookie("sess=" + strings.Repeat("a", middleware.MaxCredentialSize+1)), wantErr: true},
	})
}

func TestHeaderExtractor(t *testing.T) {
	t.Parallel()
	c := func(v string) middleware.Credentials {
		return middleware.Credentials{Value: v, Source: middleware.SourceHeader, Name: "X-Api-Key"}
	}
	h := func(vs ...string) http.Header { return http.Header{"X-Api-Key": vs} }
	runExtractCases(t, middleware.HeaderExtractor("x-api-key"), []extractCase{
		{name: "none", header: http.Header{}},
		{name: "found", header: h("k-123:abc"), want: c("k-123:abc"), found: true},
		{name: "empty", header: h(""), wantErr: true},
		{name: "repeated", header: h("a", "b"), wantErr: true},
		{name: "space", header: h("a b"), wantErr: true},
		{name: "non-ASCII", header: h("ä"), wantErr: true},
		{name: "over the size limit", header: h(strings.Repeat("a", middleware.MaxCredentialSize+1)), wantErr: true},
	})
}

func TestKeySecretExtractor(t *testing.T) {
	t.Parallel()
	c := middleware.Credentials{Value: "wk-1", Secret: "ws-secret", Source: middleware.SourceKeySecret, Name: "Modal-Key"}
	runExtractCases(t, middleware.KeySecretExtractor("", ""), []extractCase{
		{name: "none", header: http.Header{}},
		{name: "both", header: http.Header{"Modal-Key": {"wk-1"}, "Modal-Secret": {"ws-secret"}}, want: c, found: true},
		{name: "key only", header: http.Header{"Modal-Key": {"wk-1"}}, wantErr: true},
		{name: "secret only", header: http.Header{"Modal-Secret": {"ws-secret"}}, wantErr: true},
		{name: "empty secret", header: http.Header{"Modal-Key": {"wk-1"}, "Modal-Secret": {""}}, wantErr: true},
		{name: "repeated secret", header: http.Header{"Modal-Key": {"wk-1"}, "Modal-Secret": {"a", "b"}}, wantErr: true},
	})
}

func TestExtractorConstructorsPanic(t *testing.T) {
	t.Parallel()
	for name, f := range map[string]func(){
		"empty header":          func() { middleware.HeaderExtractor("") },
		"header with space":     func() { middleware.HeaderExtractor("X Key") },
		"cookie with separator": func() { middleware.CookieExtractor("a;b") },
		"same key and secret":   func() { middleware.KeySecretExtractor("X-K", "x-k") },
	} {
		t.Run(name, func(t *testing.T) { require.Panics(t, f) })
	}
}
