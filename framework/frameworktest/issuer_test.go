package frameworktest_test

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware/oidctest"
)

// The issuer's names kept here are middleware/oidctest's, so tests written
// against frameworktest keep compiling and minting the same tokens.
func TestIssuerNamesAreOIDCTests(t *testing.T) {
	t.Parallel()
	iss := frameworktest.NewIssuer(t)
	require.IsType(t, (*oidctest.Issuer)(nil), iss)
	require.Equal(t, frameworktest.DefaultAudience, iss.Audience)

	tok := iss.Mint(nil, frameworktest.WithKey(frameworktest.EC), frameworktest.WithHeader("typ", "at+jwt"))
	header := decodeSegment(t, tok, 0)
	require.Equal(t, iss.KeyID(frameworktest.EC), header["kid"])
	require.Equal(t, "at+jwt", header["typ"])
	require.Equal(t, "custom", decodeSegment(t, iss.Mint(nil, frameworktest.WithKeyID("custom")), 0)["kid"])

	forged := frameworktest.TamperPayload(t, tok, map[string]any{"sub": "admin"})
	require.Equal(t, "admin", decodeSegment(t, forged, 1)["sub"])
	require.Equal(t, frameworktest.DefaultSubject, decodeSegment(t, tok, 1)["sub"])
}

func decodeSegment(t *testing.T, token string, i int) map[string]any {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[i])
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(b, &m))
	return m
}
