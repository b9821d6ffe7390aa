package middleware_test

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/taskgate/taskgate/internal/fakedns"
	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/middleware/oidctest"
)

// recorder is a downstream service that remembers the Authorization headers
// it received.
type recorder struct {
	srv  *httptest.Server
	mu   sync.Mutex
	seen [][]string
}

func newRecorder(t *testing.T, h http.HandlerFunc) *recorder {
	rec := &recorder{}
	rec.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.mu.Lock()
		rec.seen = append(rec.seen, r.Header.Values("Authorization"))
		rec.mu.Unlock()
		if h != nil {
			h(w, r)
			return
		}
		_, _ = io.WriteString(w, "ok")
	}))
	t.Cleanup(rec.srv.Close)
	return rec
}

func (rec *recorder) authorizations() [][]string {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return rec.seen
}

func (rec *recorder) host() string { return rec.srv.Listener.Addr().String() }

func TestForwardingTransport(t *testing.T) {
	t.Parallel()
	allowed := newRecorder(t, nil)
	other := newRecorder(t, nil)
	redirector := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.srv.URL+"/landing", http.StatusFound)
	})
	client := &http.Client{Transport: middleware.ForwardingTransport(nil, []string{allowed.host(), redirector.host()})}
	const tok = "caller-token-0123456789"
	get := func(t *testing.T, ctx context.Context, u string) {
		t.Helper()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
	}
	withTok := middleware.WithCredentials(t.Context(), middleware.Credentials{Value: tok, Source: middleware.SourceCookie})
	get(t, withTok, allowed.srv.URL)
	get(t, withTok, other.srv.URL)
	get(t, withTok, redirector.srv.URL) // redirects to other
	get(t, t.Context(), allowed.srv.URL)
	get(t, middleware.WithCredentials(t.Context(), middleware.Credentials{Value: "k", Secret: "s", Source: middleware.SourceKeySecret}), allowed.srv.URL)

	require.Equal(t, [][]string{{"Bearer " + tok}, nil, nil}, allowed.authorizations(), "token, then no credentials, then key+secret not forwarded")
	require.Equal(t, [][]string{nil, nil}, other.authorizations(), "direct and redirected requests carry nothing")
	require.Equal(t, [][]string{{"Bearer " + tok}}, redirector.authorizations())
}

// An allowlist names hosts, as they appear in URLs: the base transport
// resolves them (here through the test's own DNS, which answers 127.0.0.1
// for every name), and the token goes to the allowed name only, whatever
// its case, not to another name or to the same address spelled as an IP.
func TestForwardingTransportByHostName(t *testing.T) {
	t.Parallel()
	rec := newRecorder(t, nil)
	_, port, err := net.SplitHostPort(rec.host())
	require.NoError(t, err)
	resolver := fakedns.Resolver(t, netip.MustParseAddr("127.0.0.1"))
	base := &http.Transport{DialContext: (&net.Dialer{Resolver: resolver}).DialContext}
	client := &http.Client{Transport: middleware.ForwardingTransport(base, []string{"reports.test:" + port})}
	const tok = "caller-token-0123456789"
	ctx := middleware.WithCredentials(t.Context(), middleware.Credentials{Value: tok, Source: middleware.SourceBearer})
	for _, host := range []string{"reports.test", "Reports.TEST", "elsewhere.test", "127.0.0.1"} {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+":"+port+"/", nil)
		require.NoError(t, err)
		resp, err := client.Do(req)
		require.NoError(t, err, host)
		resp.Body.Close()
	}
	require.Equal(t, [][]string{{"Bearer " + tok}, {"Bearer " + tok}, nil, nil}, rec.authorizations())
}

// TestForwardingEndToEnd: a caller's token reaches a protected service, whose
// handler calls a downstream service on the caller's behalf.
func TestForwardingEndToEnd(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, nil)
	downstream := newRecorder(t, nil)
	client := &http.Client{Transport: middleware.ForwardingTransport(nil, []string{downstream.host()})}
	r := http.NewServeMux()
	r.HandleFunc("/call", func(w http.ResponseWriter, r *http.Request) {
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, downstream.srv.URL, nil)
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		resp.Body.Close()
	})
	srv := httptest.NewServer(middleware.Passthrough(middleware.PassthroughConfig{Authenticator: f.auth})(r))
	t.Cleanup(srv.Close)
	tok := f.iss.Mint(nil)
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/call", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := srv.Client().Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	require.Equal(t, [][]string{{"Bearer " + tok}}, downstream.authorizations())
}

// TestClientCredentials: the service's own identity, through the issuer's
// token endpoint, accepted by an OIDC-protected service.
func TestClientCredentials(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, nil)
	f.iss.AddClient("svc-reporter", "svc-secret-0123456789")
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, f.iss.Client())
	client := middleware.ClientCredentials(ctx, clientcredentials.Config{
		ClientID:       "svc-reporter",
		ClientSecret:   "svc-secret-0123456789",
		TokenURL:       f.iss.TokenURL(),
		EndpointParams: url.Values{"audience": {f.iss.Audience}},
	})
	resp, err := client.Get(f.app.srv.URL + "/me")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	var me meResponse
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&me))
	require.Equal(t, "svc-reporter", me.Subject)
	require.Equal(t, oidctest.DefaultAudience, f.iss.Audience)
}

func TestForwardingTransportPanicsOnBadHost(t *testing.T) {
	t.Parallel()
	for _, h := range []string{"", "http://x", "x/y", "user@x"} {
		require.Panics(t, func() { middleware.ForwardingTransport(nil, []string{h}) }, h)
	}
}

// TestClientCredentialsTokenEndpointHangs: with no HTTP client in ctx, a
// token endpoint that never answers fails calls after TokenTimeout
// instead of blocking them (x/oauth2 fetches without the request's
// context, under a lock every call waits on).
func TestClientCredentialsTokenEndpointHangs(t *testing.T) {
	t.Parallel()
	hang := make(chan struct{})
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-hang:
		case <-r.Context().Done():
		}
	}))
	defer tokens.Close()
	defer close(hang)
	client := middleware.ClientCredentials(t.Context(), clientcredentials.Config{
		ClientID: "svc", ClientSecret: "secret", TokenURL: tokens.URL,
		AuthStyle: oauth2.AuthStyleInHeader, // one try; detection makes two
	})
	done := make(chan error, 1)
	go func() {
		resp, err := client.Get("http://127.0.0.1:1/never-reached")
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(middleware.TokenTimeout + 5*time.Second):
		t.Fatal("a call still waits on the token endpoint after TokenTimeout")
	}
}

// TestForwardingTransportCarriesTraceparent: a request made in a span's
// context carries its W3C traceparent, to any host, on a copy (the
// caller's request is left as it was); a traceparent the caller set is
// kept; without a span there is none.
func TestForwardingTransportCarriesTraceparent(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var seen []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.Header.Get("Traceparent"))
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	client := &http.Client{Transport: middleware.ForwardingTransport(nil, nil)}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	inSpan := trace.ContextWithSpanContext(t.Context(), trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled,
	}))
	const own = "00-11111111111111111111111111111111-2222222222222222-00"
	for _, c := range []struct {
		ctx    context.Context
		header string
	}{{inSpan, ""}, {inSpan, own}, {t.Context(), ""}} {
		req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, srv.URL, nil)
		require.NoError(t, err)
		if c.header != "" {
			req.Header.Set("Traceparent", c.header)
		}
		resp, err := client.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, c.header, req.Header.Get("Traceparent"), "the caller's request is not changed")
	}
	require.Equal(t, []string{"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", own, ""}, seen)
}
