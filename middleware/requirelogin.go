package middleware

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/taskgate/taskgate/internal/problem"
)

// DefaultLoginPath is where a framework App serves its sign-in page.
const DefaultLoginPath = "/auth/login"

// RequireLogin sends a browser that is not signed in to sign in. Put it
// after a Passthrough with Optional set, in front of pages: a request
// without a verified Identity gets, for GET and HEAD, 303 See Other to
// LoginURL(loginPath, the path and query it asked for); for any other
// method, 401 problem+json. A signed-in request goes through. loginPath ""
// means DefaultLoginPath.
func RequireLogin(loginPath string) func(http.Handler) http.Handler {
	if loginPath == "" {
		loginPath = DefaultLoginPath
	}
	if !strings.HasPrefix(loginPath, "/") || strings.HasPrefix(loginPath, "//") {
		panic("middleware: RequireLogin: loginPath " + loginPath + " is not an absolute path")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if _, ok := IdentityFromContext(r.Context()); ok {
				next.ServeHTTP(w, r)
				return
			}
			if r.Method != http.MethodGet && r.Method != http.MethodHead {
				problem.Unauthorized(w, r, false)
				return
			}
			w.Header().Set("Cache-Control", "no-store")
			http.Redirect(w, r, LoginURL(loginPath, requestedPath(r)), http.StatusSeeOther)
		})
	}
}

// LoginURL is loginPath with next, the path to return to once signed in,
// as its query. The sign-in page takes only a same-origin path there.
func LoginURL(loginPath, next string) string {
	if next == "" {
		return loginPath
	}
	return loginPath + "?next=" + url.QueryEscape(next)
}

// requestedPath is the path and query the client asked for, before any
// router stripped a prefix from r.URL.
func requestedPath(r *http.Request) string {
	if strings.HasPrefix(r.RequestURI, "/") {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}
