package middleware

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

// ForwardingTransport returns an http.RoundTripper that acts on the caller's
// behalf: when an outgoing request's context carries Credentials (the
// request context Passthrough produced, or WithCredentials) and its URL host
// is on allowedHosts, it adds "Authorization: Bearer <caller's token>" via
// x/oauth2's Transport. Requests to any other host are sent exactly as
// given, so a token never leaks to a third party, and that includes
// redirects: each hop is checked on its own.
//
// Every request whose context carries a valid OpenTelemetry span context
// (the App's server span, when tracing is on) gets its W3C traceparent,
// unless it has one already, so that the call joins the caller's trace.
//
// allowedHosts are exact, case-insensitive host[:port] values as they appear
// in the URL ("api.internal", "127.0.0.1:8443"); "api.internal" does not
// match "api.internal:443". Key+secret credentials and browser session ids
// (Sessions) are never forwarded.
// base sends the requests, and resolves their hosts: give it a transport
// whose net.Dialer has the net.Resolver to use (tests give one of their
// own). base nil means http.DefaultTransport. ForwardingTransport panics
// on an empty or malformed host entry.
func ForwardingTransport(base http.RoundTripper, allowedHosts []string) http.RoundTripper {
	if base == nil {
		base = http.DefaultTransport
	}
	allowed := make(map[string]struct{}, len(allowedHosts))
	for _, h := range allowedHosts {
		if h == "" || strings.ContainsAny(h, "/?#@ ") {
			panic(fmt.Sprintf("middleware: ForwardingTransport: allowed host %q is not host[:port]", h))
		}
		allowed[strings.ToLower(h)] = struct{}{}
	}
	return &forwardingTransport{base: base, allowed: allowed}
}

type forwardingTransport struct {
	base    http.RoundTripper
	allowed map[string]struct{}
}

// RoundTrip implements http.RoundTripper.
func (t *forwardingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = withTraceparent(req)
	c, ok := CredentialsFromContext(req.Context())
	// A session id is a browser's credential for this service only; no
	// other host could verify it, and it must not travel.
	if !ok || c.Source == SourceKeySecret || c.Value == "" || IsSessionID(c.Value) {
		return t.base.RoundTrip(req)
	}
	if _, ok := t.allowed[strings.ToLower(req.URL.Host)]; !ok {
		return t.base.RoundTrip(req)
	}
	// oauth2.Transport clones the request before setting the header, so
	// the caller's request (and the redirect copies http.Client makes of
	// its headers) never carry the token.
	ot := &oauth2.Transport{Base: t.base, Source: callerToken{c.Value}}
	return ot.RoundTrip(req)
}

// withTraceparent returns req, or a clone of it carrying the traceparent
// (and tracestate) of the span context in its context. A RoundTripper must
// not change the request it was given, hence the clone.
func withTraceparent(req *http.Request) *http.Request {
	sc := trace.SpanContextFromContext(req.Context())
	if !sc.IsValid() || req.Header.Get("Traceparent") != "" {
		return req
	}
	req = req.Clone(req.Context())
	propagation.TraceContext{}.Inject(req.Context(), propagation.HeaderCarrier(req.Header))
	return req
}

// callerToken is an oauth2.TokenSource for one request's caller. x/oauth2's
// TokenSource has no context parameter, hence one small value per request.
type callerToken struct{ value string }

func (s callerToken) Token() (*oauth2.Token, error) {
	return &oauth2.Token{AccessToken: s.value, TokenType: "Bearer"}, nil
}

// ClientCredentials returns an *http.Client that authenticates as the
// service itself with the OAuth 2.0 client credentials grant: it fetches a
// token from cfg.TokenURL, caches it and renews it before expiry. Use it
// where the service acts on its own behalf; use ForwardingTransport where it
// acts on the caller's. ctx supplies the HTTP client used for the token
// endpoint (oauth2.HTTPClient) and must outlive the returned client; when it
// supplies none, one with TokenTimeout is used, because x/oauth2 fetches a
// token under a lock, without the request's context: a token endpoint that
// never answers would block every call through the client for good.
func ClientCredentials(ctx context.Context, cfg clientcredentials.Config) *http.Client {
	if _, ok := ctx.Value(oauth2.HTTPClient).(*http.Client); !ok {
		ctx = context.WithValue(ctx, oauth2.HTTPClient, &http.Client{Timeout: TokenTimeout})
	}
	return cfg.Client(ctx)
}

// TokenTimeout bounds a token endpoint's answer in ClientCredentials when
// ctx carries no HTTP client of its own (twice over when the config leaves
// AuthStyle to detection, which may try both styles).
const TokenTimeout = 10 * time.Second
