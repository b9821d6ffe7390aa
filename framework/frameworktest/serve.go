package frameworktest

import (
	"context"
	"net"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/taskgate/taskgate/framework"
)

// Serve builds app's handler, starts it (its OnStart hooks and its
// environments'), serves it on a loopback httptest server and returns the
// server's URL. When t ends the server closes and the app stops, with 5
// seconds for its OnStop hooks; a failed start or stop fails t.
func Serve(t testing.TB, app *framework.App) string {
	t.Helper()
	return ServeOn(t, app, nil)
}

// ServeOn is Serve on ln, a loopback listener the test opened first: its
// address is known before the App is built, as App.Login.ExternalURL (the
// OIDC redirect URI) needs. nil ln is Serve.
func ServeOn(t testing.TB, app *framework.App, ln net.Listener) string {
	t.Helper()
	h, err := app.Handler()
	if err != nil {
		t.Fatalf("frameworktest: App.Handler: %v", err)
	}
	// t.Context is done by the time cleanups run; the app stops under its
	// own deadline.
	if err := app.Start(context.WithoutCancel(t.Context())); err != nil {
		t.Fatalf("frameworktest: App.Start: %v", err)
	}
	srv := httptest.NewUnstartedServer(h)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(func() {
		srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := app.Stop(ctx); err != nil {
			t.Errorf("frameworktest: App.Stop: %v", err)
		}
	})
	return srv.URL
}
