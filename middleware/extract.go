package middleware

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"
)

// MaxCredentialSize bounds every credential an extractor accepts, in bytes.
// Real tokens are well under it (a large OIDC access token is 2-4 KiB); a
// bigger one is refused before anyone spends time parsing or hashing it.
const MaxCredentialSize = 8 << 10

// ErrMalformedCredentials reports a credential that was presented but cannot
// be valid whatever the authenticator: two Authorization headers, an empty
// bearer token, bytes outside the allowed set, a value over
// MaxCredentialSize. Passthrough answers it with 401 invalid_token.
var ErrMalformedCredentials = errors.New("middleware: malformed credentials")

// An Extractor finds a credential on a request. It returns ok=false when the
// request carries none of its kind, and an error wrapping
// ErrMalformedCredentials when one is present but malformed. An error
// message never contains the credential.
type Extractor interface {
	Extract(r *http.Request) (c Credentials, ok bool, err error)
}

// ExtractorFunc adapts a function to the Extractor interface.
type ExtractorFunc func(r *http.Request) (Credentials, bool, error)

// Extract calls f(r).
func (f ExtractorFunc) Extract(r *http.Request) (Credentials, bool, error) { return f(r) }

// Default names used by the extractors.
const (
	DefaultCookieName   = "taskgate_session"
	DefaultKeyHeader    = "Modal-Key"
	DefaultSecretHeader = "Modal-Secret"
)

// byteClass marks which bytes each credential kind may contain.
type byteClass uint8

const (
	classToken68 byteClass = 1 << iota // RFC 7235 token68 body (no '=')
	classVisible                       // visible US-ASCII, %x21-7E
)

// classes is a lookup table so that checking a multi-kilobyte token costs a
// table load per byte and nothing else.
var classes = func() (t [256]byteClass) {
	for b := 0x21; b <= 0x7e; b++ {
		t[b] |= classVisible
	}
	for b := 'a'; b <= 'z'; b++ {
		t[b] |= classToken68
		t[b-'a'+'A'] |= classToken68
	}
	for b := '0'; b <= '9'; b++ {
		t[b] |= classToken68
	}
	for _, b := range "-._~+/" {
		t[b] |= classToken68
	}
	return t
}()

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformedCredentials}, args...)...)
}

// validToken68 reports whether s is a token68 (RFC 7235 section 2.1), the
// syntax RFC 6750 gives bearer tokens: 1*(ALPHA / DIGIT / "-" / "." / "_" /
// "~" / "+" / "/") *"=".
func validToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	return body != "" && allIn(body, classToken68)
}

// allIn reports whether every byte of s is in class c. It runs on every
// request, over tokens of a kilobyte or more, so it checks eight bytes per
// branch: the table loads are independent and the CPU overlaps them.
func allIn(s string, c byteClass) bool {
	acc := c
	for len(s) >= 8 {
		acc &= classes[s[0]] & classes[s[1]] & classes[s[2]] & classes[s[3]] &
			classes[s[4]] & classes[s[5]] & classes[s[6]] & classes[s[7]]
		s = s[8:]
	}
	for i := 0; i < len(s); i++ {
		acc &= classes[s[i]]
	}
	return acc&c != 0
}

func visibleASCII(s string) bool { return allIn(s, classVisible) }

// singleHeader returns the one value of header key (canonical form). A
// repeated header is malformed: two proxies or a client and an attacker
// disagreeing about who the caller is must not be resolved by picking one.
func singleHeader(r *http.Request, key string) (string, bool, error) {
	vs := r.Header[key]
	switch len(vs) {
	case 0:
		return "", false, nil
	case 1:
		return vs[0], true, nil
	default:
		return "", false, malformed("%d %s headers", len(vs), key)
	}
}

type bearerExtractor struct{}

// BearerExtractor finds "Authorization: Bearer <token>" (RFC 6750 section
// 2.1). The scheme is matched case-insensitively. An Authorization header
// with another scheme (Basic, Digest) is not a bearer credential and is left
// for other extractors. Malformed: two Authorization headers, an empty token,
// a token outside the token68 syntax (spaces, control or non-ASCII bytes), a
// token over MaxCredentialSize.
func BearerExtractor() Extractor { return bearerExtractor{} }

func (bearerExtractor) Extract(r *http.Request) (Credentials, bool, error) {
	v, ok, err := singleHeader(r, "Authorization")
	if !ok || err != nil {
		return Credentials{}, false, err
	}
	scheme, token, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return Credentials{}, false, nil
	}
	token = strings.TrimLeft(token, " ") // RFC 7235: 1*SP after the scheme
	switch {
	case token == "":
		return Credentials{}, false, malformed("empty bearer token")
	case len(token) > MaxCredentialSize:
		return Credentials{}, false, malformed("bearer token over %d bytes", MaxCredentialSize)
	case !validToken68(token):
		return Credentials{}, false, malformed("bearer token is not token68")
	}
	return Credentials{Scheme: "Bearer", Value: token, Source: SourceBearer, Name: "Authorization"}, true, nil
}

type keyExtractor struct{}

// KeyExtractor finds "Authorization: Key <token>", the form fal's clients
// send (fal-js libs/client/src/request.ts: `Key ${credentials}`). The token
// is verified as a bearer token is: the credential is SourceBearer with
// Scheme "Key", so every authenticator that takes bearer tokens takes it,
// and a handler forwarding it downstream sends it as a bearer token. The
// scheme is matched case-insensitively; other schemes are left for other
// extractors. fal's keys are "<id>:<secret>", not token68, so any visible
// ASCII is allowed. Malformed: two Authorization headers, an empty token,
// bytes outside visible ASCII, a token over MaxCredentialSize.
func KeyExtractor() Extractor { return keyExtractor{} }

func (keyExtractor) Extract(r *http.Request) (Credentials, bool, error) {
	v, ok, err := singleHeader(r, "Authorization")
	if !ok || err != nil {
		return Credentials{}, false, err
	}
	scheme, token, _ := strings.Cut(v, " ")
	if !strings.EqualFold(scheme, "Key") {
		return Credentials{}, false, nil
	}
	token = strings.TrimLeft(token, " ")
	switch {
	case token == "":
		return Credentials{}, false, malformed("empty key")
	case len(token) > MaxCredentialSize:
		return Credentials{}, false, malformed("key over %d bytes", MaxCredentialSize)
	case !visibleASCII(token):
		return Credentials{}, false, malformed("key has bytes outside visible ASCII")
	}
	return Credentials{Scheme: "Key", Value: token, Source: SourceBearer, Name: "Authorization"}, true, nil
}

type cookieExtractor struct{ name string }

// CookieExtractor finds the cookie called name (DefaultCookieName when
// empty). An empty cookie value counts as no cookie, as browsers keep one
// after a logout that cleared it. Two cookies of that name are malformed: a
// sibling subdomain can plant a second one (cookie tossing) and the server
// cannot tell which the user's is.
func CookieExtractor(name string) Extractor {
	if name == "" {
		name = DefaultCookieName
	}
	if !validHeaderName(name) {
		panic(fmt.Sprintf("middleware: CookieExtractor: invalid cookie name %q", name))
	}
	return cookieExtractor{name: name}
}

func (e cookieExtractor) Extract(r *http.Request) (Credentials, bool, error) {
	if len(r.Header["Cookie"]) == 0 {
		return Credentials{}, false, nil
	}
	cs := r.CookiesNamed(e.name)
	switch len(cs) {
	case 0:
		return Credentials{}, false, nil
	case 1:
	default:
		return Credentials{}, false, malformed("%d cookies named %s", len(cs), e.name)
	}
	v := cs[0].Value
	switch {
	case v == "":
		return Credentials{}, false, nil
	case len(v) > MaxCredentialSize:
		return Credentials{}, false, malformed("cookie %s over %d bytes", e.name, MaxCredentialSize)
	case !visibleASCII(v):
		return Credentials{}, false, malformed("cookie %s has bytes outside visible ASCII", e.name)
	}
	return Credentials{Value: v, Source: SourceCookie, Name: e.name}, true, nil
}

type headerExtractor struct{ key string }

// HeaderExtractor finds a credential in a custom header, such as X-Api-Key.
// The whole header value is the credential. Malformed: the header repeated,
// empty, over MaxCredentialSize, or with bytes outside visible ASCII.
// HeaderExtractor panics if name is not a valid header name.
func HeaderExtractor(name string) Extractor {
	if !validHeaderName(name) {
		panic(fmt.Sprintf("middleware: HeaderExtractor: invalid header name %q", name))
	}
	return headerExtractor{key: textproto.CanonicalMIMEHeaderKey(name)}
}

func (e headerExtractor) Extract(r *http.Request) (Credentials, bool, error) {
	v, ok, err := singleHeader(r, e.key)
	if !ok || err != nil {
		return Credentials{}, false, err
	}
	if err := checkHeaderValue(e.key, v); err != nil {
		return Credentials{}, false, err
	}
	return Credentials{Value: v, Source: SourceHeader, Name: e.key}, true, nil
}

func checkHeaderValue(key, v string) error {
	switch {
	case v == "":
		return malformed("empty %s header", key)
	case len(v) > MaxCredentialSize:
		return malformed("%s header over %d bytes", key, MaxCredentialSize)
	case !visibleASCII(v):
		return malformed("%s header has bytes outside visible ASCII", key)
	}
	return nil
}

type keySecretExtractor struct{ key, secret string }

// KeySecretExtractor finds a key id and its secret in two headers, as
// Modal's proxy auth tokens do. Empty names default to DefaultKeyHeader and
// DefaultSecretHeader. One header without the other is malformed, as is
// either header repeated, empty, oversized or outside visible ASCII.
// KeySecretExtractor panics if a name is invalid or both are the same.
func KeySecretExtractor(keyHeader, secretHeader string) Extractor {
	if keyHeader == "" {
		keyHeader = DefaultKeyHeader
	}
	if secretHeader == "" {
		secretHeader = DefaultSecretHeader
	}
	if !validHeaderName(keyHeader) || !validHeaderName(secretHeader) {
		panic(fmt.Sprintf("middleware: KeySecretExtractor: invalid header names %q, %q", keyHeader, secretHeader))
	}
	e := keySecretExtractor{
		key:    textproto.CanonicalMIMEHeaderKey(keyHeader),
		secret: textproto.CanonicalMIMEHeaderKey(secretHeader),
	}
	if e.key == e.secret {
		panic(fmt.Sprintf("middleware: KeySecretExtractor: key and secret header are both %q", e.key))
	}
	return e
}

func (e keySecretExtractor) Extract(r *http.Request) (Credentials, bool, error) {
	key, hasKey, err := singleHeader(r, e.key)
	if err != nil {
		return Credentials{}, false, err
	}
	secret, hasSecret, err := singleHeader(r, e.secret)
	if err != nil {
		return Credentials{}, false, err
	}
	switch {
	case !hasKey && !hasSecret:
		return Credentials{}, false, nil
	case hasKey != hasSecret:
		return Credentials{}, false, malformed("%s and %s must be sent together", e.key, e.secret)
	}
	if err := checkHeaderValue(e.key, key); err != nil {
		return Credentials{}, false, err
	}
	if err := checkHeaderValue(e.secret, secret); err != nil {
		return Credentials{}, false, err
	}
	return Credentials{Value: key, Secret: secret, Source: SourceKeySecret, Name: e.key}, true, nil
}

// validHeaderName reports whether s is an RFC 9110 token, the syntax of
// header field and cookie names.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if classes[b]&classVisible == 0 || strings.IndexByte(`"(),/:;<=>?@[\]{}`, b) >= 0 {
			return false
		}
	}
	return true
}
