package middleware_test

import (
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"

	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/middleware"
)

func ExamplePassthrough() {
	tokens, err := middleware.ParseStaticTokens("dev-token-0123456789abcdef=alice:admins")
	if err != nil {
		log.Fatal(err)
	}
	r := chi.NewRouter()
	r.Use(middleware.Passthrough(middleware.PassthroughConfig{
		Authenticator: middleware.NewCache(tokens, middleware.CacheConfig{}),
		AdminGroup:    "admins",
	}))
	r.Get("/health", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "healthy") })
	r.Get("/me", func(w http.ResponseWriter, r *http.Request) {
		id, _ := middleware.IdentityFromContext(r.Context())
		creds, _ := middleware.CredentialsFromContext(r.Context())
		fmt.Fprintf(w, "%s %v admin=%v via %v", id.Subject, id.Groups, middleware.IsAdmin(r.Context()), creds)
	})
	srv := httptest.NewServer(r)
	defer srv.Close()

	for _, tc := range []struct{ path, token string }{
		{"/health", ""},
		{"/me", ""},
		{"/me", "wrong-token-0123456789"},
		{"/me", "dev-token-0123456789abcdef"},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			body = []byte(resp.Header.Get("WWW-Authenticate"))
		}
		fmt.Println(tc.path, resp.StatusCode, string(body))
	}
	// Output:
	// /health 200 healthy
	// /me 401 Bearer realm="taskgate"
	// /me 401 Bearer realm="taskgate", error="invalid_token"
	// /me 200 alice [admins] admin=true via Credentials{source=bearer name=Authorization scheme=Bearer value=[REDACTED]}
}
