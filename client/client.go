package client

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"
)

// Options configure a Client. The zero value (or nil) is valid: no
// credentials, a default HTTP client, the default retry policy.
type Options struct {
	// Credentials authenticate every request: BearerToken, OAuth2 or
	// KeySecret. Nil sends none.
	Credentials Credentials
	// HTTPClient sends the requests; default one with no overall timeout
	// (event streams are long), bounded per request by Timeout. Its
	// redirects to another host never carry the credentials.
	HTTPClient *http.Client
	// UserAgent names the program, "mytool/1.2"; it is sent before the
	// client's own "taskgate-go/<version>".
	UserAgent string
	// Retry says how requests are retried; see RetryPolicy.
	Retry RetryPolicy
	// Timeout bounds one attempt of a request that is not a stream;
	// default 60 s, plus SubmitOptions.Wait where given.
	Timeout time.Duration
}

// Client calls one taskgate environment. It is safe for concurrent use.
type Client struct {
	base    *url.URL
	hc      *http.Client
	creds   Credentials
	ua      string
	retry   RetryPolicy
	timeout time.Duration
	// strict refuses unknown fields in answers: the tests' check that
	// the client's types keep up with the server's.
	strict bool
}

// maxResponseBytes bounds an answer read into memory: run outputs are at
// most a few MiB (the dispatcher's MaxOutputBytes, the queue's 10 MiB).
const maxResponseBytes = 64 << 20

// New returns a client of the environment at baseURL, such as
// "http://127.0.0.1:8080" or "https://api.example.com/team-a" (an
// environment's PathPrefix is part of its base URL).
func New(baseURL string, opts *Options) (*Client, error) {
	if opts == nil {
		opts = &Options{}
	}
	u, err := url.Parse(strings.TrimSuffix(baseURL, "/"))
	if err != nil {
		return nil, fmt.Errorf("client: base URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return nil, fmt.Errorf("client: base URL %q: want http(s)://host[:port][/prefix], without query, fragment or user", baseURL)
	}
	retry, err := opts.Retry.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.Timeout < 0 {
		return nil, errors.New("client: Options.Timeout must not be negative")
	}
	c := &Client{base: u, creds: opts.Credentials, retry: retry, timeout: opts.Timeout}
	if c.timeout == 0 {
		c.timeout = 60 * time.Second
	}
	c.ua = "taskgate-go/" + Version()
	if opts.UserAgent != "" {
		c.ua = opts.UserAgent + " " + c.ua
	}
	c.hc = withoutCredentialsOnRedirect(opts.HTTPClient, c.creds)
	return c, nil
}

// BaseURL is the environment's URL the client calls.
func (c *Client) BaseURL() string { return c.base.String() }

// Version is the version of the taskgate module this program was built
// with ("v1.2.3"), or "dev" when it is not known (a build inside the
// module's own tree).
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	v := bi.Main.Version
	if bi.Main.Path != modulePath {
		v = ""
		for _, d := range bi.Deps {
			if d.Path == modulePath {
				v = d.Version
				if d.Replace != nil {
					v = d.Replace.Version
				}
			}
		}
	}
	if v == "" || v == "(devel)" {
		return "dev"
	}
	return v
}

const modulePath = "github.com/taskgate/taskgate"

// withoutCredentialsOnRedirect copies hc (nil: a default client) so that a
// redirect to another host drops the credential headers. net/http drops
// Authorization itself, but not a key+secret pair's custom headers.
func withoutCredentialsOnRedirect(hc *http.Client, creds Credentials) *http.Client {
	if hc == nil {
		hc = &http.Client{}
	}
	cp := *hc
	next := hc.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if len(via) > 0 && req.URL.Host != via[0].URL.Host {
			req.Header.Del("Authorization")
			if h, ok := creds.(headerNamer); ok {
				for _, name := range h.headerNames() {
					req.Header.Del(name)
				}
			}
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cp
}

// call is one request of the API, retried as a whole.
type call struct {
	method string
	// path is the escaped path under the base URL: "/run/" + url.PathEscape(name).
	path   string
	query  url.Values
	header http.Header
	body   []byte
	// idempotent requests are retried after any network error; the others
	// only when they surely never reached the server (see retryable).
	idempotent bool
	// extra time on top of Client.timeout (a Prefer: wait).
	extra time.Duration
	// recorded marks answers that carry this header as the final answer
	// of the app, whatever their status (a queued request's response).
	recorded string
}

// newRequest builds one attempt of cl.
func (c *Client) newRequest(ctx context.Context, cl *call, accept string) (*http.Request, error) {
	u, err := url.Parse(c.base.String() + cl.path)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	if cl.query != nil {
		u.RawQuery = cl.query.Encode()
	}
	var body io.Reader
	if cl.body != nil {
		body = bytes.NewReader(cl.body)
	}
	req, err := http.NewRequestWithContext(ctx, cl.method, u.String(), body)
	if err != nil {
		return nil, fmt.Errorf("client: %w", err)
	}
	for k, vs := range cl.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if cl.body != nil && req.Header.Get("Content-Type") == "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", accept)
	req.Header.Set("User-Agent", c.ua)
	// chi's RequestID takes the caller's id, so the server's logs and an
	// *Error name the same request.
	req.Header.Set("X-Request-Id", newID())
	if c.creds != nil {
		if err := c.creds.Apply(req); err != nil {
			return nil, fmt.Errorf("client: credentials: %w", err)
		}
	}
	return req, nil
}

// newID is a random identifier: request ids and idempotency keys.
func newID() string { return rand.Text() }

// reply is an answer read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// roundTrip sends cl, retrying as the policy allows, and reads the answer
// whole. Any answer that is not 2xx (nor recorded) is an *Error.
func (c *Client) roundTrip(ctx context.Context, cl *call) (*reply, error) {
	var rep *reply
	err := c.withRetries(ctx, cl, func(actx context.Context) (*http.Response, error) {
		actx, cancel := context.WithTimeout(actx, c.timeout+cl.extra)
		defer cancel()
		req, err := c.newRequest(actx, cl, "application/json, application/problem+json")
		if err != nil {
			return nil, noRetry{err}
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
		if err != nil {
			return nil, err
		}
		if len(b) > maxResponseBytes {
			return nil, noRetry{fmt.Errorf("client: answer of %s %s is over %d bytes", cl.method, cl.path, maxResponseBytes)}
		}
		rep = &reply{status: resp.StatusCode, header: resp.Header, body: b}
		resp.Body = io.NopCloser(bytes.NewReader(b))
		return resp, nil
	})
	if err != nil {
		return nil, err
	}
	return rep, nil
}

// open sends cl for a stream: the answer's body is left open for the
// caller to read and close. The connection (not the stream) is retried.
func (c *Client) open(ctx context.Context, cl *call, accept string) (*http.Response, error) {
	var out *http.Response
	err := c.withRetries(ctx, cl, func(actx context.Context) (*http.Response, error) {
		req, err := c.newRequest(actx, cl, accept)
		if err != nil {
			return nil, noRetry{err}
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			return nil, err
		}
		if resp.StatusCode/100 != 2 {
			// Read the problem now: withRetries decides on it.
			b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
			resp.Body.Close()
			resp.Body = io.NopCloser(bytes.NewReader(b))
		}
		out = resp
		return resp, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// getJSON GETs path and decodes the answer into out.
func (c *Client) getJSON(ctx context.Context, path string, query url.Values, out any) error {
	rep, err := c.roundTrip(ctx, &call{method: http.MethodGet, path: path, query: query, idempotent: true})
	if err != nil {
		return err
	}
	return c.decode(rep, out)
}

// decode reads a JSON answer into out.
func (c *Client) decode(rep *reply, out any) error {
	if out == nil {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(rep.body))
	if c.strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("client: decoding the answer (status %d): %w", rep.status, err)
	}
	return nil
}

// jsonBody encodes v for a request; a json.RawMessage or []byte is sent
// as it is.
func jsonBody(v any) ([]byte, error) {
	switch b := v.(type) {
	case json.RawMessage:
		return b, nil
	case []byte:
		return b, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("client: encoding the body: %w", err)
	}
	return b, nil
}
