package client_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
	"github.com/taskgate/taskgate/middleware"
)

// Each credential form reaches the authenticator that verifies it: OIDC
// tokens from a client credentials grant, and a Modal-style key+secret.
func TestCredentialForms(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	iss := frameworktest.NewIssuer(t)
	iss.AddClient("ci-bot", "ci-bot-secret-0123456789")
	oidc, err := middleware.NewOIDC(ctx, middleware.OIDCConfig{Issuer: iss.URL, Audience: iss.Audience, HTTPClient: iss.Client()})
	require.NoError(t, err)
	ks, err := middleware.NewKeySecret(middleware.KeySecretEntry{Key: "wk-1", Secret: "ws-0123456789abcdef", Subject: "worker"})
	require.NoError(t, err)
	svc := service(t, t.TempDir())
	frameworktest.Serve(t, svc.App) // starts the dispatcher the App below shares
	base := frameworktest.Serve(t, &framework.App{
		Environments:  []environments.Environment{demo.Webhook()},
		Registry:      registry(),
		Dispatcher:    svc.Dispatcher,
		Authenticator: middleware.Chain(oidc, ks),
		Extractors:    []middleware.Extractor{middleware.BearerExtractor(), middleware.KeySecretExtractor("", "")},
	})

	cc := clientcredentials.Config{ClientID: "ci-bot", ClientSecret: "ci-bot-secret-0123456789", TokenURL: iss.TokenURL()}
	ts := cc.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, iss.Client()))
	cases := map[string]struct {
		creds   client.Credentials
		subject string
	}{
		"oauth2":     {client.OAuth2(ts), "ci-bot"},
		"key+secret": {client.KeySecret{Key: "wk-1", Secret: "ws-0123456789abcdef"}, "worker"},
	}
	for name, tc := range cases {
		c, err := client.New(base, &client.Options{Credentials: tc.creds})
		require.NoError(t, err)
		me, err := c.Me(ctx)
		require.NoError(t, err, name)
		require.Equal(t, tc.subject, me.Subject, name)
		require.Equal(t, tc.subject, me.Name, name)
		out, err := client.Run(ctx, c, demo.Echo, demo.EchoInput{Message: name})
		require.NoError(t, err, name)
		require.Equal(t, name, out.Message)
	}

	for name, creds := range map[string]client.Credentials{
		"wrong secret": client.KeySecret{Key: "wk-1", Secret: "ws-wrong-0123456789"},
		"none":         nil,
		"wrong token":  client.BearerToken("not-a-token-0123456789"),
	} {
		c, err := client.New(base, &client.Options{Credentials: creds})
		require.NoError(t, err)
		_, err = c.Me(ctx)
		var apiErr *client.Error
		require.ErrorAs(t, err, &apiErr, name)
		require.Equal(t, http.StatusUnauthorized, apiErr.Status, name)
	}
}

// A redirect to another host never carries the credentials, not even a
// key+secret pair's custom headers (net/http drops Authorization only).
func TestRedirectsToAnotherHostDropCredentials(t *testing.T) {
	t.Parallel()
	seen := make(chan http.Header, 4)
	record := func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Clone()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"subject":"x","name":"x","groups":[]}`))
	}
	other := httptest.NewServer(http.HandlerFunc(record))
	t.Cleanup(other.Close)
	mux := http.NewServeMux()
	mux.HandleFunc("/elsewhere/me", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/me", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/here/me", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/same/me", http.StatusTemporaryRedirect)
	})
	mux.HandleFunc("/same/me", record)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	for prefix, kept := range map[string]bool{"/elsewhere": false, "/here": true} {
		c, err := client.New(srv.URL+prefix, &client.Options{Credentials: client.KeySecret{Key: "k", Secret: "s3cret-0123456789"}})
		require.NoError(t, err)
		_, err = c.Me(t.Context())
		require.NoError(t, err)
		h := <-seen
		require.Equal(t, kept, h.Get("Modal-Secret") != "", prefix)
		require.Equal(t, kept, h.Get("Modal-Key") != "", prefix)
	}
}
