package middleware_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/taskgate/taskgate/middleware"
)

// An identity without a subject would match every run whose owner is ""
// (or list everyone's): Passthrough refuses it as an invalid credential.
func TestPassthroughRefusesAnIdentityWithoutSubject(t *testing.T) {
	t.Parallel()
	auth := middleware.AuthenticatorFunc(func(context.Context, middleware.Credentials) (middleware.Identity, error) {
		return middleware.Identity{Name: "nobody"}, nil
	})
	h := middleware.Passthrough(middleware.PassthroughConfig{Authenticator: auth})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("the handler must not run")
	}))
	req := httptest.NewRequest(http.MethodGet, "/runs", nil)
	req.Header.Set("Authorization", "Bearer some-token-value")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401", rec.Code)
	}
}
