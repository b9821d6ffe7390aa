package apidocs

import (
	"io/fs"
	"net/http"
	"path"
	"reflect"
	"strconv"
	"strings"
	"sync"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humachi"
	"github.com/go-chi/chi/v5"
	swaggerfiles "github.com/swaggo/files/v2"
)

// Paths served without credentials by every environment: the docs, their
// assets, the OpenAPI documents and their schemas.
var Paths = []string{
	"/docs",
	"/docs/assets/*",
	"/openapi.json", "/openapi.yaml",
	"/openapi-3.0.json", "/openapi-3.0.yaml",
	"/schemas/*",
}

// Owns reports whether path belongs to the docs (the page, its assets, the
// OpenAPI documents, the schemas), so that an environment never hands such a
// path, which is served without credentials, to a handler of the user's.
func Owns(path string) bool {
	switch path {
	case "/docs", "/openapi.json", "/openapi.yaml", "/openapi-3.0.json", "/openapi-3.0.yaml":
		return true
	}
	return strings.HasPrefix(path, "/docs/") || strings.HasPrefix(path, "/schemas/")
}

// CSP is the Content-Security-Policy of the docs page. Swagger UI needs
// inline styles (it sets style attributes from React); scripts, data and
// fonts come only from the server itself.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' data:; connect-src 'self'; font-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Config returns the huma configuration every environment uses: OpenAPI 3.1
// at /openapi.{json,yaml} with the 3.0 downgrades beside (served by New), a
// version of "" read from the build (BuildVersion), schemas under
// /schemas, no huma docs page (Handler serves ours), and no "$schema" links
// injected into response bodies, so responses stay exactly the documented
// shapes.
func Config(title, version string) huma.Config {
	if version == "" {
		version = BuildVersion()
	}
	cfg := huma.DefaultConfig(title, version)
	cfg.DocsPath = ""
	// New serves the documents itself, with a complete 3.0 downgrade.
	cfg.OpenAPIPath = ""
	// Redocly's recommended rules want servers; the documents' own origin
	// ("/": the host that served them) is right wherever they are served.
	cfg.Servers = []*huma.Server{{URL: "/", Description: "The host serving this document."}}
	cfg.CreateHooks = nil
	cfg.Components.Schemas = huma.NewMapRegistry("#/components/schemas/", newSchemaNamer())
	return cfg
}

// newSchemaNamer returns huma's namer made safe for types from many
// packages: huma panics when two types share a schema name, and users'
// task inputs are often all called Input. A type whose short name is taken
// by another type gets its package name in front ("BillingInput"); types of
// taskgate's task subpackages and of its queue always do
// ("DispatchQueueSummary", "QueueStatus"): their short names (Status, Log)
// would say too little in a user's document.
func newSchemaNamer() func(reflect.Type, string) string {
	var mu sync.Mutex
	owners := map[string]reflect.Type{}
	return func(t reflect.Type, hint string) string {
		name := huma.DefaultSchemaNamer(t, hint)
		base := t
		for base.Kind() == reflect.Pointer {
			base = base.Elem()
		}
		if base.Name() == "" || base.PkgPath() == "" {
			return name
		}
		qualified := pkgTitle(base.PkgPath()) + name
		if strings.HasPrefix(base.PkgPath(), "github.com/taskgate/taskgate/tasks/") ||
			base.PkgPath() == "github.com/taskgate/taskgate/environments/queue" {
			return qualified
		}
		mu.Lock()
		defer mu.Unlock()
		if owner, ok := owners[name]; ok && owner != base {
			return qualified
		}
		owners[name] = base
		return name
	}
}

func pkgTitle(pkgPath string) string {
	p := path.Base(pkgPath)
	p = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			return r
		}
		return -1
	}, p)
	if p == "" {
		return ""
	}
	return strings.ToUpper(p[:1]) + p[1:]
}

// New creates a huma API over r with Config and mounts the docs on r.
// HEAD is answered wherever GET is (huma registers GET only), so that
// probes and link checkers that send HEAD get what GET would.
func New(r chi.Router, cfg huma.Config) huma.API {
	r.Use(headAsGet(r))
	api := humachi.New(r, cfg)
	Mount(r)
	serveDocuments(r, api)
	return api
}

// Mount serves GET /docs and its assets on r.
func Mount(r chi.Router) {
	r.Get("/docs", servePage)
	r.Handle("/docs/assets/*", http.StripPrefix("/docs/assets/", assets()))
}

// headAsGet routes a HEAD request that routes has no HEAD route for, but
// a GET one, to the GET handler; net/http drops the body it writes. It is
// chi's GetHead, which looks the route up in the route context's Routes:
// that is the App's root router when routes is an environment's router
// reached through the root's "/*", where any method matches.
func headAsGet(routes chi.Routes) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rctx := chi.RouteContext(r.Context())
			if r.Method != http.MethodHead || rctx == nil {
				next.ServeHTTP(w, r)
				return
			}
			p := rctx.RoutePath
			if p == "" {
				p = r.URL.RawPath
				if p == "" {
					p = r.URL.Path
				}
			}
			if !routes.Match(chi.NewRouteContext(), http.MethodHead, p) && routes.Match(chi.NewRouteContext(), http.MethodGet, p) {
				rctx.RouteMethod = http.MethodGet
			}
			next.ServeHTTP(w, r)
		})
	}
}

// ServeSlash answers GET and HEAD /docs/ with the docs page, as /docs, and
// passes every other request to next. An environment puts it in front of
// its authentication: Passthrough's exclusions take only clean paths, and
// the page holds nothing but links to what is public anyway.
func ServeSlash(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := r.URL.Path
		rctx := chi.RouteContext(r.Context())
		if rctx != nil && rctx.RoutePath != "" {
			p = rctx.RoutePath
		}
		if p == "/docs/" && r.URL.RawPath == "" && (r.Method == http.MethodGet || r.Method == http.MethodHead) {
			if rctx != nil {
				// Counted under the docs' route, not as unmatched.
				rctx.RoutePatterns = append(rctx.RoutePatterns, "/docs/")
			}
			writePage(w, pageInDocs)
			return
		}
		next.ServeHTTP(w, r)
	})
}

var assetFS = func() fs.FS {
	sub, err := fs.Sub(ownAssets, "assets")
	if err != nil {
		panic(err)
	}
	return sub
}()

// assets serves Swagger UI's bundle and our initializer; source maps and the
// upstream sample page are left out.
func assets() http.Handler {
	ui := http.FileServerFS(swaggerfiles.FS)
	own := http.FileServerFS(assetFS)
	allowed := map[string]bool{
		"swagger-ui.css": true, "swagger-ui-bundle.js": true,
		"swagger-ui-standalone-preset.js": true, "favicon-32x32.png": true,
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		setSecurityHeaders(w)
		w.Header().Set("Cache-Control", "public, max-age=86400")
		switch {
		case name == "init.js" || name == "docs.css":
			own.ServeHTTP(w, r)
		case allowed[name]:
			ui.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	})
}

func setSecurityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
}

// The page uses relative URLs only, so it works under any path prefix: from
// /team-a/docs, "openapi.json" is /team-a/openapi.json. pageInDocs is the
// same page for /docs/, one level down.
var (
	page       = pageAt("")
	pageInDocs = pageAt("../")
)

func pageAt(up string) []byte {
	return []byte(strings.NewReplacer(`href="docs/`, `href="`+up+`docs/`, `src="docs/`, `src="`+up+`docs/`,
		`data-spec="openapi.json"`, `data-spec="`+up+`openapi.json"`).Replace(pageTemplate))
}

const pageTemplate = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API docs</title>
<link rel="icon" type="image/png" href="docs/assets/favicon-32x32.png">
<link rel="stylesheet" href="docs/assets/swagger-ui.css">
<link rel="stylesheet" href="docs/assets/docs.css">
</head>
<body>
<div id="swagger-ui" data-spec="openapi.json"></div>
<script src="docs/assets/swagger-ui-bundle.js"></script>
<script src="docs/assets/swagger-ui-standalone-preset.js"></script>
<script src="docs/assets/init.js"></script>
</body>
</html>
`

func servePage(w http.ResponseWriter, _ *http.Request) { writePage(w, page) }

func writePage(w http.ResponseWriter, p []byte) {
	setSecurityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("Content-Length", strconv.Itoa(len(p)))
	_, _ = w.Write(p)
}
