package environments

import (
	"net/http"
	"net/url"
	"strings"
)

// LoginPath is where a browser that asked for a page (BrowserPather)
// without valid credentials is sent, with the page it asked for in the
// query parameter next. The App serves it.
const LoginPath = "/auth/login"

// BrowserPather is implemented by environments that serve pages to
// browsers, such as the webhook environment's console. Wrap answers a GET
// or HEAD of one of these paths that the passthrough auth refuses with
// 401 by a 303 to LoginPath instead, so a person lands on the sign-in
// page rather than on a problem+json body. Entries are exact paths, or
// subtrees ending in "/*", relative to the PathPrefix as Auth.Exclude's.
type BrowserPather interface{ BrowserPaths() []string }

// toLogin sends browsers refused at paths to LoginPath. Only answers of
// the auth in front are 401 on these paths: pages never answer it.
func toLogin(paths []string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if (r.Method != http.MethodGet && r.Method != http.MethodHead) || !matchPath(paths, r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(&loginRedirect{ResponseWriter: w, r: r}, r)
	})
}

func matchPath(paths []string, p string) bool {
	for _, e := range paths {
		if prefix, ok := strings.CutSuffix(e, "*"); ok && strings.HasPrefix(p, prefix) || e == p {
			return true
		}
	}
	return false
}

// loginRedirect turns a 401 into a 303 to LoginPath?next=<the page>.
type loginRedirect struct {
	http.ResponseWriter
	r          *http.Request
	redirected bool
}

func (l *loginRedirect) WriteHeader(code int) {
	if code != http.StatusUnauthorized {
		l.ResponseWriter.WriteHeader(code)
		return
	}
	l.redirected = true
	h := l.Header()
	for _, k := range []string{"Content-Type", "Content-Length", "WWW-Authenticate"} {
		h.Del(k)
	}
	h.Set("Cache-Control", "no-store")
	http.Redirect(l.ResponseWriter, l.r, LoginPath+"?next="+url.QueryEscape(nextPage(l.r)), http.StatusSeeOther)
}

func (l *loginRedirect) Write(b []byte) (int, error) {
	if l.redirected {
		return len(b), nil
	}
	return l.ResponseWriter.Write(b)
}

func (l *loginRedirect) Unwrap() http.ResponseWriter { return l.ResponseWriter }

// nextPage is the page asked for as the browser sent it (with any
// PathPrefix a router in front took off), always a local path: never
// "//host", which a login page would follow off-site.
func nextPage(r *http.Request) string {
	p := r.RequestURI
	if p == "" || p[0] != '/' {
		p = r.URL.RequestURI()
	}
	if strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}
