package middleware

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// maxJWKSSize bounds a key set document. Real ones are a few KiB.
const maxJWKSSize = 1 << 20

const (
	// jwksFetchTimeout bounds one fetch of the key set, whatever the
	// HTTP client's own timeout (none, in a client built by hand): a
	// fetch that never ended would keep every later refresh waiting on it.
	jwksFetchTimeout = 10 * time.Second
	// staleKeysWait is how long a request with stale keys waits for their
	// refetch before it verifies with them anyway: a hanging issuer must
	// not hold every request for a whole fetch.
	staleKeysWait = time.Second
)

var (
	errUnknownKey   = errors.New("middleware: no key for the token's kid")
	errBadSignature = errors.New("middleware: signature does not verify")
)

// keySet is an oidc.KeySet that fetches a JWKS document and refetches it
// when a token names a key it does not hold, at most once per interval.
//
// go-oidc's RemoteKeySet refetches on every unknown kid, so anyone can make
// the server hit the issuer once per request by sending tokens with random
// kids. Here the first unknown kid after the interval triggers one fetch
// (concurrent callers wait for that same fetch); every other unknown kid
// until the interval has passed again is refused without a fetch. A key
// rotation is therefore picked up within one interval.
//
// Keys are also refetched, under the same gate, once they are older than
// maxAge, so that a key the issuer withdrew (a compromised one) stops
// verifying even if no token ever names an unknown kid. If that fetch
// fails, or takes longer than staleKeysWait, the old keys keep serving: an
// issuer outage must not lock everyone out, nor hold their requests.
type keySet struct {
	url      string
	client   *http.Client
	interval time.Duration
	maxAge   time.Duration
	now      func() time.Time
	algs     []jose.SignatureAlgorithm
	logger   *slog.Logger

	mu        sync.Mutex
	keys      []jose.JSONWebKey // replaced, never mutated: safe to read after unlock
	fetchedAt time.Time         // when keys were fetched
	lastFetch time.Time         // start of the last fetch attempt, failed or not
	inflight  *fetchCall
}

var _ oidc.KeySet = (*keySet)(nil)

// fetchCall is one fetch that several goroutines may wait for.
type fetchCall struct {
	done chan struct{}
	keys []jose.JSONWebKey
	err  error
}

// VerifySignature implements oidc.KeySet. go-oidc has already checked the
// algorithm against the allowed list; it is parsed again here with the same
// list, as go-oidc does not share its parsed token with other key sets.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSignedCompact(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("middleware: malformed jwt: %w", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("middleware: jwt must have exactly one signature")
	}
	h := jws.Signatures[0].Header
	k.mu.Lock()
	keys, stale := k.keys, k.now().Sub(k.fetchedAt) >= k.maxAge
	k.mu.Unlock()
	if stale {
		wctx, cancel := context.WithTimeout(ctx, staleKeysWait)
		if fresh, err := k.refresh(wctx); err == nil {
			keys = fresh
		}
		cancel()
	}
	payload, err := verifyWith(jws, keys, h.KeyID, h.Algorithm)
	if !errors.Is(err, errUnknownKey) {
		return payload, err
	}
	keys, err = k.refresh(ctx)
	if err != nil {
		return nil, err
	}
	return verifyWith(jws, keys, h.KeyID, h.Algorithm)
}

// verifyWith checks jws against the keys that match kid and alg. A token
// without kid is tried against every key of a matching algorithm. It returns
// errUnknownKey when no key is a candidate, so that only then a refetch is
// considered: a known kid with a bad signature is a forgery, not a rotation.
func verifyWith(jws *jose.JSONWebSignature, keys []jose.JSONWebKey, kid, alg string) ([]byte, error) {
	candidates := 0
	for i := range keys {
		key := &keys[i]
		if (kid != "" && key.KeyID != kid) || key.Use == "enc" || (key.Algorithm != "" && key.Algorithm != alg) {
			continue
		}
		candidates++
		if payload, err := jws.Verify(key); err == nil {
			return payload, nil
		}
	}
	if candidates == 0 {
		return nil, errUnknownKey
	}
	return nil, errBadSignature
}

// refresh fetches the key set unless a fetch started less than one interval
// ago, in which case it returns errUnknownKey at once. Callers that arrive
// while a fetch is in flight wait for it.
func (k *keySet) refresh(ctx context.Context) ([]jose.JSONWebKey, error) {
	k.mu.Lock()
	c := k.inflight
	if c == nil {
		now := k.now()
		if !k.lastFetch.IsZero() && now.Sub(k.lastFetch) < k.interval {
			k.mu.Unlock()
			return nil, errUnknownKey
		}
		c = &fetchCall{done: make(chan struct{})}
		k.inflight, k.lastFetch = c, now
		// The fetch outlives the request that triggered it: the other
		// waiters still want its result if this caller gives up.
		go k.run(context.WithoutCancel(ctx), c)
	}
	k.mu.Unlock()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.done:
		return c.keys, c.err
	}
}

func (k *keySet) run(ctx context.Context, c *fetchCall) {
	ctx, cancel := context.WithTimeout(ctx, jwksFetchTimeout)
	defer cancel()
	keys, err := k.fetch(ctx)
	if err != nil {
		k.logger.WarnContext(ctx, "fetching OIDC key set", slog.String("url", k.url), slog.Any("error", err))
	}
	k.mu.Lock()
	if err == nil {
		k.keys, k.fetchedAt = keys, k.now()
	} else {
		keys = k.keys // keep serving the keys we had
	}
	k.inflight = nil
	k.mu.Unlock()
	c.keys, c.err = keys, err
	close(c.done)
}

func (k *keySet) fetch(ctx context.Context) ([]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("middleware: jwks request: %w", err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("middleware: jwks fetch: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("middleware: jwks fetch: status %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSSize+1))
	if err != nil {
		return nil, fmt.Errorf("middleware: jwks read: %w", err)
	}
	if len(body) > maxJWKSSize {
		return nil, fmt.Errorf("middleware: jwks document over %d bytes", maxJWKSSize)
	}
	return parseJWKS(body)
}

// parseJWKS decodes a JWK set, keeping the public signature keys it
// understands and skipping the others (RFC 7517 section 5: implementations
// should ignore keys they do not understand rather than fail the set).
func parseJWKS(body []byte) ([]jose.JSONWebKey, error) {
	var doc struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, fmt.Errorf("middleware: jwks decode: %w", err)
	}
	keys := make([]jose.JSONWebKey, 0, len(doc.Keys))
	for _, raw := range doc.Keys {
		var key jose.JSONWebKey
		if err := key.UnmarshalJSON(raw); err != nil || !key.Valid() || !key.IsPublic() || key.Use == "enc" {
			continue
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		return nil, errors.New("middleware: jwks has no usable signature keys")
	}
	return keys, nil
}
