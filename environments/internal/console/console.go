package console

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

//go:embed assets templates
var files embed.FS

// CSP is the console's Content-Security-Policy: its own script, style and
// images only, no inline script or style, no frames, forms and fetches to
// its own origin.
const CSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// Config configures a Console.
type Config struct {
	// API is the environment's JSON API, paths relative to Prefix. A run's
	// page asks its GET /run/{name} whether the caller may see the run.
	API http.Handler
	// Prefix is the environment's PathPrefix ("" or "/team-a"), put before
	// the API paths the script calls.
	Prefix string
	// Title heads the pages; default "taskgate".
	Title string
	// Dispatcher feeds the charts (Sampler). Required.
	Dispatcher *dispatch.Dispatcher
	// Serves reports whether the environment serves an endpoint, by
	// operation id ("list-runs", "list-nodes"); pages whose data the
	// environment does not serve are left out. Nil serves every page.
	Serves func(endpoint string) bool
	// Logger receives template errors; default slog.Default().
	Logger *slog.Logger
	// Now is the charts' clock; default time.Now.
	Now func() time.Time
}

func (c *Config) validate() error {
	if c.API == nil || c.Dispatcher == nil {
		return errors.New("console: Config.API and Config.Dispatcher are required")
	}
	if c.Title == "" {
		c.Title = "taskgate"
	}
	if c.Serves == nil {
		c.Serves = func(string) bool { return true }
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// Console serves the console's pages. Create it with New.
type Console struct {
	cfg     Config
	pages   map[string]*template.Template
	version string // of the assets, in their URLs so they can be cached
	sampler *Sampler
}

// page is one entry of the navigation.
type page struct {
	Name, Title string
	// Needs is the endpoint whose data the page shows.
	Needs string
}

var pages = []page{
	{"runs", "Runs", "list-runs"},
	{"tasks", "Tasks", "list-tasks"},
	{"nodes", "Nodes & GPUs", "list-nodes"},
	{"queue", "Queue", "queue-summary"},
	{"charts", "Charts", "queue-summary"},
}

// New parses the pages and starts following the dispatcher's events for
// the charts.
func New(cfg Config) (*Console, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	c := &Console{cfg: cfg, pages: map[string]*template.Template{}}
	h := sha256.New()
	err := fs.WalkDir(files, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := files.ReadFile(p)
		h.Write(b)
		return err
	})
	if err != nil {
		return nil, err
	}
	c.version = hex.EncodeToString(h.Sum(nil))[:12]
	funcs := template.FuncMap{"asset": func(name string) string { return c.base() + "/static/" + name + "?v=" + c.version }}
	for _, name := range []string{"runs", "run", "tasks", "nodes", "queue", "charts", "notfound"} {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: %w", err)
		}
		c.pages[name] = t
	}
	c.sampler = NewSampler(cfg.Dispatcher, cfg.Now)
	return c, nil
}

// Sampler returns the sampler that feeds the charts.
func (c *Console) Sampler() *Sampler { return c.sampler }

// base is the console's path as the browser sees it.
func (c *Console) base() string { return c.cfg.Prefix + "/console" }

// Handler serves the console; mount it at /console.
func (c *Console) Handler() http.Handler {
	r := chi.NewRouter()
	r.Use(headers)
	static, _ := fs.Sub(files, "assets")
	r.Get("/static/{file}", func(w http.ResponseWriter, r *http.Request) {
		// The URLs carry the assets' version: a new build has new URLs.
		w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
		http.ServeFileFS(w, r, static, chi.URLParam(r, "file"))
	})
	r.Get("/", c.show("runs"))
	for _, p := range pages {
		if c.cfg.Serves(p.Needs) {
			r.Get("/"+p.Name, c.show(p.Name))
		}
	}
	if c.cfg.Serves("get-run") {
		r.Get("/run/{name}", c.runPage)
	}
	if c.cfg.Serves("queue-summary") {
		r.Get("/charts/{chart}.svg", c.chart)
	}
	r.NotFound(func(w http.ResponseWriter, r *http.Request) { c.render(w, r, http.StatusNotFound, "notfound", nil) })
	return r
}

// headers are every answer's: the CSP, no sniffing, no referrer to
// other origins, and no caching of pages that hold a caller's data.
func headers(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", CSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		next.ServeHTTP(w, r)
	})
}

// view is what a page's template gets.
type view struct {
	Title, Page, Base, API string
	Nav                    []page
	// Admin shows the mine/everyone switch; the API still decides.
	Admin   bool
	Subject string
	Run     string
}

func (c *Console) show(name string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { c.render(w, r, http.StatusOK, name, nil) }
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, fill func(*view)) {
	c.sampler.Start()
	v := view{Title: c.cfg.Title, Page: name, Base: c.base(), API: c.cfg.Prefix, Admin: middleware.IsAdmin(r.Context())}
	if id, ok := middleware.IdentityFromContext(r.Context()); ok {
		v.Subject = id.Subject
	}
	for _, p := range pages {
		if c.cfg.Serves(p.Needs) {
			v.Nav = append(v.Nav, p)
		}
	}
	if fill != nil {
		fill(&v)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := c.pages[name].Execute(w, v); err != nil {
		c.cfg.Logger.Warn("console page", "page", name, "err", err)
	}
}

// runPage shows a run the caller may see; the API's GET /run/{name}
// decides, so someone else's run is 404 here as there.
func (c *Console) runPage(w http.ResponseWriter, r *http.Request) {
	name := chi.URLParam(r, "name")
	switch status := c.ask(r, "/run/"+url.PathEscape(name)); status {
	case http.StatusOK:
		c.render(w, r, http.StatusOK, "run", func(v *view) { v.Run = name })
	case http.StatusNotFound, http.StatusUnprocessableEntity:
		c.render(w, r, http.StatusNotFound, "notfound", nil)
	default:
		http.Error(w, http.StatusText(status), status)
	}
}

// ask sends a GET of the API's path in process, as the caller (the
// request's context holds its identity), and returns the status. The body
// is dropped.
func (c *Console) ask(r *http.Request, p string) int {
	// A fresh routing context: the API's router must route p, not reuse
	// the console's match.
	ctx := context.WithValue(r.Context(), chi.RouteCtxKey, nil)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, path.Clean(p), http.NoBody)
	if err != nil {
		return http.StatusBadRequest
	}
	req.Header.Set("Accept", "application/json")
	rec := &statusOnly{header: http.Header{}}
	c.cfg.API.ServeHTTP(rec, req)
	if rec.status == 0 {
		return http.StatusOK
	}
	return rec.status
}

// statusOnly is a ResponseWriter that keeps the status alone.
type statusOnly struct {
	header http.Header
	status int
}

func (s *statusOnly) Header() http.Header { return s.header }
func (s *statusOnly) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return len(b), nil
}
func (s *statusOnly) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
}
