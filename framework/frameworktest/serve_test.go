package frameworktest_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/framework"
	"github.com/taskgate/taskgate/framework/frameworktest"
)

func TestServeStartsServesAndStops(t *testing.T) {
	t.Parallel()
	var started, stopped atomic.Bool
	app := &framework.App{
		Environments: []environments.Environment{environments.MustAppEnvironment(environments.AppConfig{
			Settings: environments.Settings{Name: "hello", Auth: environments.Auth{Disabled: true}},
			Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				http.Error(w, "hello", http.StatusTeapot)
			}),
		})},
		OnStart: []func(context.Context) error{func(context.Context) error { started.Store(true); return nil }},
		OnStop:  []func(context.Context) error{func(context.Context) error { stopped.Store(true); return nil }},
	}
	t.Run("served", func(t *testing.T) {
		url := frameworktest.Serve(t, app)
		if !started.Load() {
			t.Fatal("OnStart did not run")
		}
		resp, err := http.Get(url + "/anything")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot {
			t.Fatalf("status %d, want the app's 418", resp.StatusCode)
		}
	})
	if !stopped.Load() {
		t.Fatal("OnStop did not run when the test ended")
	}
}
