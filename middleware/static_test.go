package middleware_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
)

func TestParseStaticTokens(t *testing.T) {
	t.Parallel()
	s, err := middleware.ParseStaticTokens(" tok-alice-0123456789abcdef=alice:admins+ml , tok-bob-0123456789abcdef==bob,tok-carol-0123456789abcdef=carol:ops ")
	require.NoError(t, err)
	require.Equal(t, 3, s.Len())
	tests := []struct {
		token      string
		wantSub    string
		wantGroups []string
	}{
		{"tok-alice-0123456789abcdef", "alice", []string{"admins", "ml"}},
		{"tok-bob-0123456789abcdef=", "bob", []string{}}, // padding kept: the subject starts after the last '='
		{"tok-carol-0123456789abcdef", "carol", []string{"ops"}},
	}
	for _, tt := range tests {
		t.Run(tt.wantSub, func(t *testing.T) {
			for _, src := range []middleware.Source{middleware.SourceBearer, middleware.SourceCookie, middleware.SourceHeader} {
				id, err := s.Authenticate(t.Context(), middleware.Credentials{Value: tt.token, Source: src})
				require.NoError(t, err)
				require.Equal(t, tt.wantSub, id.Subject)
				require.Equal(t, tt.wantGroups, id.Groups)
			}
		})
	}
	for name, c := range map[string]middleware.Credentials{
		"unknown":       {Value: "tok-nobody-0123456789abcdef", Source: middleware.SourceBearer},
		"prefix":        {Value: "tok-alice-0123456789abcde", Source: middleware.SourceBearer},
		"bob unpadded":  {Value: "tok-bob-0123456789abcdef", Source: middleware.SourceBearer},
		"empty":         {Source: middleware.SourceBearer},
		"as key+secret": {Value: "tok-alice-0123456789abcdef", Secret: "x", Source: middleware.SourceKeySecret},
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			_, err := s.Authenticate(t.Context(), c)
			require.ErrorIs(t, err, middleware.ErrInvalidCredentials)
		})
	}
}

func TestParseStaticTokensErrors(t *testing.T) {
	t.Parallel()
	const good = "good-token-0123456789abcdef=alice"
	tests := []struct {
		name      string
		spec      string
		wantEntry int
		secret    string // must not appear in the error
	}{
		{"no equals", good + ",secret-token-0123456789", 2, "secret-token-0123456789"},
		{"short token", "short-secret=alice", 1, "short-secret"},
		{"empty subject", "secret-token-0123456789=", 1, "secret-token-0123456789"},
		{"empty group", "secret-token-0123456789=alice:", 1, "secret-token-0123456789"},
		{"empty group in list", "secret-token-0123456789=alice:a++b", 1, "secret-token-0123456789"},
		{"space in token", good + ",secret token 0123456789=bob", 2, "secret token 0123456789"},
		{"non-ASCII token", "sécret-token-0123456789=bob", 1, "sécret-token-0123456789"},
		{"duplicate", good + ",dup-secret-0123456789abc=bob,dup-secret-0123456789abc=carol", 3, "dup-secret-0123456789abc"},
		{"trailing comma", good + ",", 2, ""},
		{"subject with space", "secret-token-0123456789=al ice", 1, "secret-token-0123456789"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := middleware.ParseStaticTokens(tt.spec)
			require.ErrorIs(t, err, middleware.ErrInvalidStaticTokens)
			var se *middleware.StaticTokenError
			require.True(t, errors.As(err, &se))
			require.Equal(t, tt.wantEntry, se.Entry)
			if tt.secret != "" {
				require.NotContains(t, err.Error(), tt.secret)
			}
		})
	}
	t.Run("empty spec", func(t *testing.T) {
		_, err := middleware.ParseStaticTokens("  ")
		require.ErrorIs(t, err, middleware.ErrInvalidStaticTokens)
	})
}

func TestKeySecret(t *testing.T) {
	t.Parallel()
	ks, err := middleware.NewKeySecret(
		middleware.KeySecretEntry{Key: "wk-alice", Secret: "ws-alice-0123456789", Subject: "alice", Groups: []string{"ml"}},
		middleware.KeySecretEntry{Key: "wk-bob", Secret: "ws-bob-0123456789ab", Subject: "bob"},
	)
	require.NoError(t, err)
	id, err := ks.Authenticate(t.Context(), middleware.Credentials{Value: "wk-alice", Secret: "ws-alice-0123456789", Source: middleware.SourceKeySecret})
	require.NoError(t, err)
	require.Equal(t, "alice", id.Subject)
	require.Equal(t, []string{"ml"}, id.Groups)
	for name, c := range map[string]middleware.Credentials{
		"other's secret": {Value: "wk-alice", Secret: "ws-bob-0123456789ab", Source: middleware.SourceKeySecret},
		"unknown key":    {Value: "wk-carol", Secret: "ws-alice-0123456789", Source: middleware.SourceKeySecret},
		"empty secret":   {Value: "wk-alice", Source: middleware.SourceKeySecret},
		"as bearer":      {Value: "wk-alice", Secret: "ws-alice-0123456789", Source: middleware.SourceBearer},
	} {
		t.Run("refuses "+name, func(t *testing.T) {
			_, err := ks.Authenticate(t.Context(), c)
			require.ErrorIs(t, err, middleware.ErrInvalidCredentials)
		})
	}
	for name, e := range map[string]middleware.KeySecretEntry{
		"short secret": {Key: "k", Secret: "short", Subject: "s"},
		"no key":       {Secret: "ws-alice-0123456789", Subject: "s"},
		"no subject":   {Key: "k", Secret: "ws-alice-0123456789"},
	} {
		t.Run("invalid "+name, func(t *testing.T) {
			_, err := middleware.NewKeySecret(e)
			require.ErrorIs(t, err, middleware.ErrInvalidKeySecret)
			require.NotContains(t, err.Error(), e.Secret)
		})
	}
}

func TestChain(t *testing.T) {
	t.Parallel()
	static, err := middleware.ParseStaticTokens("tok-alice-0123456789abcdef=alice")
	require.NoError(t, err)
	ks, err := middleware.NewKeySecret(middleware.KeySecretEntry{Key: "wk-bob", Secret: "ws-bob-0123456789ab", Subject: "bob"})
	require.NoError(t, err)
	boom := errors.New("issuer unreachable")
	broken := middleware.AuthenticatorFunc(func(_ context.Context, _ middleware.Credentials) (middleware.Identity, error) {
		return middleware.Identity{}, boom
	})
	ch := middleware.Chain(broken, static, ks)
	tests := []struct {
		name    string
		c       middleware.Credentials
		wantSub string
		wantErr error
	}{
		{"static after a broken one", middleware.Credentials{Value: "tok-alice-0123456789abcdef", Source: middleware.SourceBearer}, "alice", nil},
		{"key+secret", middleware.Credentials{Value: "wk-bob", Secret: "ws-bob-0123456789ab", Source: middleware.SourceKeySecret}, "bob", nil},
		{"nobody: operational error wins", middleware.Credentials{Value: "nope", Source: middleware.SourceBearer}, "", boom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id, err := ch.Authenticate(t.Context(), tt.c)
			require.ErrorIs(t, err, tt.wantErr)
			require.Equal(t, tt.wantSub, id.Subject)
		})
	}
	_, err = middleware.Chain(static, ks).Authenticate(t.Context(), middleware.Credentials{Value: "nope", Source: middleware.SourceBearer})
	require.ErrorIs(t, err, middleware.ErrInvalidCredentials)
}
