package middleware_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
)

// counting wraps an Authenticator and counts the calls that reach it.
type counting struct {
	next  middleware.Authenticator
	calls atomic.Int64
}

func (c *counting) Authenticate(ctx context.Context, cred middleware.Credentials) (middleware.Identity, error) {
	c.calls.Add(1)
	return c.next.Authenticate(ctx, cred)
}

// expiring accepts every credential as subject=value, expiring at exp.
func expiring(exp time.Time) middleware.Authenticator {
	return middleware.AuthenticatorFunc(func(_ context.Context, c middleware.Credentials) (middleware.Identity, error) {
		if c.Value == "bad" {
			return middleware.Identity{}, middleware.ErrInvalidCredentials
		}
		return middleware.Identity{Subject: c.Value + "|" + c.Secret + "|" + c.Source.String(), Expiry: exp}, nil
	})
}

func TestCacheVerifiesOnce(t *testing.T) {
	t.Parallel()
	f := newOIDCFixture(t, nil)
	cnt := &counting{next: f.auth}
	cache := middleware.NewCache(cnt, middleware.CacheConfig{Now: f.clock.Now})
	tok := f.iss.Mint(map[string]any{"sub": "alice"})
	for range 5 {
		id, err := cache.Authenticate(t.Context(), middleware.Credentials{Value: tok, Source: middleware.SourceBearer})
		require.NoError(t, err)
		require.Equal(t, "alice", id.Subject)
	}
	require.EqualValues(t, 1, cnt.calls.Load())
}

// TestCacheStats counts a first lookup, repeats, and refusals (never
// cached, so each one misses).
func TestCacheStats(t *testing.T) {
	t.Parallel()
	cache := middleware.NewCache(expiring(time.Time{}), middleware.CacheConfig{})
	good := middleware.Credentials{Value: "tok", Source: middleware.SourceBearer}
	bad := middleware.Credentials{Value: "bad", Source: middleware.SourceBearer}
	for range 4 {
		_, err := cache.Authenticate(t.Context(), good)
		require.NoError(t, err)
	}
	for range 2 {
		_, err := cache.Authenticate(t.Context(), bad)
		require.ErrorIs(t, err, middleware.ErrInvalidCredentials)
	}
	require.Equal(t, middleware.CacheStats{Hits: 3, Misses: 3}, cache.Stats())
}

func TestCacheExpiry(t *testing.T) {
	t.Parallel()
	clk := newClock()
	tests := []struct {
		name     string
		expiry   time.Time
		advance  time.Duration
		wantHits bool
	}{
		{"before the identity's expiry", clk.Now().Add(time.Minute), 59 * time.Second, true},
		{"at the identity's expiry", clk.Now().Add(time.Minute), time.Minute, false},
		{"MaxTTL caps a later expiry", clk.Now().Add(time.Hour), 10 * time.Minute, false},
		{"MaxTTL caps no expiry", time.Time{}, 10 * time.Minute, false},
		{"no expiry within MaxTTL", time.Time{}, 9 * time.Minute, true},
		{"already expired: not cached", clk.Now().Add(-time.Second), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := &clock{t: clk.Now()}
			cnt := &counting{next: expiring(tt.expiry)}
			cache := middleware.NewCache(cnt, middleware.CacheConfig{MaxTTL: 10 * time.Minute, Now: c.Now})
			cred := middleware.Credentials{Value: "tok", Source: middleware.SourceBearer}
			_, err := cache.Authenticate(t.Context(), cred)
			require.NoError(t, err)
			c.Advance(tt.advance)
			_, err = cache.Authenticate(t.Context(), cred)
			require.NoError(t, err)
			want := int64(2)
			if tt.wantHits {
				want = 1
			}
			require.Equal(t, want, cnt.calls.Load())
		})
	}
}

func TestCacheDoesNotConfuseCredentials(t *testing.T) {
	t.Parallel()
	cache := middleware.NewCache(expiring(time.Time{}), middleware.CacheConfig{})
	creds := []middleware.Credentials{
		{Value: "a", Source: middleware.SourceBearer},
		{Value: "a", Source: middleware.SourceCookie},
		{Value: "ab", Secret: "c", Source: middleware.SourceKeySecret},
		{Value: "a", Secret: "bc", Source: middleware.SourceKeySecret},
		{Value: "b", Source: middleware.SourceBearer},
	}
	for range 2 { // the second round is served from the cache
		for _, c := range creds {
			id, err := cache.Authenticate(t.Context(), c)
			require.NoError(t, err)
			require.Equal(t, c.Value+"|"+c.Secret+"|"+c.Source.String(), id.Subject)
		}
	}
}

func TestCacheDoesNotCacheRefusals(t *testing.T) {
	t.Parallel()
	cnt := &counting{next: expiring(time.Time{})}
	cache := middleware.NewCache(cnt, middleware.CacheConfig{})
	for range 3 {
		_, err := cache.Authenticate(t.Context(), middleware.Credentials{Value: "bad", Source: middleware.SourceBearer})
		require.ErrorIs(t, err, middleware.ErrInvalidCredentials)
	}
	require.EqualValues(t, 3, cnt.calls.Load())
	require.Zero(t, cache.Len())
}

func TestCacheIsBounded(t *testing.T) {
	t.Parallel()
	cnt := &counting{next: expiring(time.Time{})}
	cache := middleware.NewCache(cnt, middleware.CacheConfig{Size: 64})
	for i := range 1000 {
		_, err := cache.Authenticate(t.Context(), middleware.Credentials{Value: fmt.Sprint("tok", i), Source: middleware.SourceBearer})
		require.NoError(t, err)
	}
	require.LessOrEqual(t, cache.Len(), 64)
	require.Greater(t, cache.Len(), 32, "shards fill up")

	// The most recently used credential survives more insertions into
	// its shard than the shard holds.
	hot := middleware.Credentials{Value: "hot", Source: middleware.SourceBearer}
	_, err := cache.Authenticate(t.Context(), hot)
	require.NoError(t, err)
	before := cnt.calls.Load()
	for i := range 1000 {
		_, err := cache.Authenticate(t.Context(), hot)
		require.NoError(t, err)
		_, err = cache.Authenticate(t.Context(), middleware.Credentials{Value: fmt.Sprint("cold", i), Source: middleware.SourceBearer})
		require.NoError(t, err)
	}
	require.EqualValues(t, before+1000, cnt.calls.Load(), "only the cold credentials were verified")
}

func TestCacheConfigPanics(t *testing.T) {
	t.Parallel()
	a := expiring(time.Time{})
	require.PanicsWithValue(t, "middleware: CacheConfig.Size -1 is negative", func() { middleware.NewCache(a, middleware.CacheConfig{Size: -1}) })
	require.Panics(t, func() { middleware.NewCache(a, middleware.CacheConfig{MaxTTL: -1}) })
	require.Panics(t, func() { middleware.NewCache(nil, middleware.CacheConfig{}) })
}
