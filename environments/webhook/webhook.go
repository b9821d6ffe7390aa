package webhook

import (
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-chi/chi/v5"
	"github.com/samber/lo"

	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/internal/console"
	"github.com/taskgate/taskgate/environments/internal/edge"
	"github.com/taskgate/taskgate/internal/apidocs"
	"github.com/taskgate/taskgate/internal/dnslabel"
	"github.com/taskgate/taskgate/tasks"
)

// Endpoint groups of the prebuilt webhook environment.
const (
	GroupCore  = "core"  // GET /health, GET /me
	GroupTask  = "task"  // GET /tasks, GET /task/…, POST /run-task/…
	GroupRun   = "run"   // GET /run/…, /run/…/io, /run/…/events, /run/…/logs, POST /run/…/abort, GET /runs
	GroupNodes = "nodes" // GET /nodes, GET /queue (admins)
	GroupAll   = "all"
)

// groupEndpoints maps each group to its endpoint (operation) names.
var groupEndpoints = map[string][]string{
	GroupCore:  {"health", "me"},
	GroupTask:  {"list-tasks", "get-task", "run-task"},
	GroupRun:   {"get-run", "get-run-io", "abort-run", "list-runs", "run-events", "run-logs"},
	GroupNodes: {"list-nodes", "queue-summary"},
}

// Config configures the prebuilt webhook environment, in the spirit of
// Flyte's FlyteWebhookAppEnvironment.
type Config struct {
	environments.Settings
	// Groups of endpoints to serve: core, task, run, nodes, or all. Empty
	// means core, task and run.
	Groups []string
	// Endpoints adds single endpoints by name (see Endpoints()).
	Endpoints []string
	// AllowedTasks limits which tasks can be seen and run: "name",
	// "project/name" or "project/domain/name"; any segment may be "*" or a
	// glob ("train-*"). Nil allows every registered task; an empty non-nil
	// list allows none.
	AllowedTasks []string
	// MaxWait caps Prefer: wait=N; default and maximum 60 s.
	MaxWait time.Duration
	// NoConsole turns off the web console at /console, served by default
	// where the run group is (see package environments/internal/console).
	NoConsole bool
}

// Environment is the prebuilt webhook environment. Create it with New.
type Environment struct {
	cfg       Config
	endpoints map[string]bool
	allow     []allowRule
	// withConsole is whether the last Build mounted the console, for
	// PublicPaths and BrowserPaths, which Wrap asks after Build.
	withConsole bool
}

var (
	_ environments.Environment   = (*Environment)(nil)
	_ environments.PublicPather  = (*Environment)(nil)
	_ environments.BrowserPather = (*Environment)(nil)
)

// EndpointNames lists every endpoint name the webhook environment knows.
func EndpointNames() []string {
	var all []string
	for _, g := range []string{GroupCore, GroupTask, GroupRun, GroupNodes} {
		all = append(all, groupEndpoints[g]...)
	}
	return all
}

// New checks cfg: an unknown group, endpoint or malformed allowlist
// entry is an error here, not a warning later.
func New(cfg Config) (*Environment, error) {
	if err := cfg.Settings.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxWait <= 0 || cfg.MaxWait > 60*time.Second {
		cfg.MaxWait = 60 * time.Second
	}
	if cfg.Title == "" {
		cfg.Title = "taskgate webhook"
	}
	w := &Environment{cfg: cfg, endpoints: map[string]bool{}}
	groups := cfg.Groups
	if len(groups) == 0 && len(cfg.Endpoints) == 0 {
		groups = []string{GroupCore, GroupTask, GroupRun}
	}
	for _, g := range groups {
		if g == GroupAll {
			for _, eps := range groupEndpoints {
				for _, e := range eps {
					w.endpoints[e] = true
				}
			}
			continue
		}
		eps, ok := groupEndpoints[g]
		if !ok {
			return nil, fmt.Errorf("webhook %s: unknown endpoint group %q (known: core, task, run, nodes, all)", cfg.Name, g)
		}
		for _, e := range eps {
			w.endpoints[e] = true
		}
	}
	known := EndpointNames()
	for _, e := range cfg.Endpoints {
		if !slices.Contains(known, e) {
			return nil, fmt.Errorf("webhook %s: unknown endpoint %q (known: %s)", cfg.Name, e, strings.Join(known, ", "))
		}
		w.endpoints[e] = true
	}
	for _, a := range cfg.AllowedTasks {
		rule, err := parseAllowRule(a)
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", cfg.Name, err)
		}
		w.allow = append(w.allow, rule)
	}
	return w, nil
}

// MustNew is New that panics on error.
func MustNew(cfg Config) *Environment {
	w, err := New(cfg)
	if err != nil {
		panic(err)
	}
	return w
}

// Settings implements environments.Environment.
func (w *Environment) Settings() *environments.Settings { return &w.cfg.Settings }

// Serves reports whether endpoint e is enabled.
func (w *Environment) Serves(e string) bool { return w.endpoints[e] }

// Allowed reports whether the allowlist lets task d through. The replay
// tasks of app environments' queues are internal: no allowlist reaches them,
// since their inputs would let a caller forge a replayed request; nor does
// it reach the system tasks whose runs hold environments' resources.
func (w *Environment) Allowed(d *tasks.Definition) bool {
	if d.Project == environments.QueueProject || d.Project == environments.SystemProject && d.Domain == environments.SystemDomain {
		return false
	}
	if w.cfg.AllowedTasks == nil {
		return true
	}
	for _, r := range w.allow {
		if r.match(d) {
			return true
		}
	}
	return false
}

// allowRule is one allowlist entry, normalized to three segments.
type allowRule struct{ project, domain, name string }

func parseAllowRule(s string) (allowRule, error) {
	parts := strings.Split(s, "/")
	var r allowRule
	switch len(parts) {
	case 1:
		r = allowRule{"*", "*", parts[0]}
	case 2:
		r = allowRule{parts[0], "*", parts[1]}
	case 3:
		r = allowRule{parts[0], parts[1], parts[2]}
	default:
		return r, fmt.Errorf("allowlist entry %q: want name, project/name or project/domain/name", s)
	}
	for _, seg := range []string{r.project, r.domain, r.name} {
		if !validPattern(seg) {
			return r, fmt.Errorf("allowlist entry %q: segment %q is neither a name nor a pattern of a-z, 0-9, - and *", s, seg)
		}
	}
	return r, nil
}

// validPattern accepts a task name, "*", or a glob such as "train-*": a
// DNS label in which '*' stands for any run of label characters, so no
// other glob syntax sneaks in, and no pattern that no task name can match.
func validPattern(seg string) bool {
	return dnslabel.Valid(strings.ReplaceAll(seg, "*", "x"))
}

func (r allowRule) match(d *tasks.Definition) bool {
	ok := func(pat, v string) bool {
		m, _ := path.Match(pat, v) // patterns are checked by validPattern
		return m
	}
	return ok(r.project, d.Project) && ok(r.domain, d.Domain) && ok(r.name, d.Name)
}

// Build implements environments.Environment.
func (w *Environment) Build(deps *environments.Deps) (http.Handler, error) {
	if deps.Dispatcher == nil && (w.endpoints["run-task"] || w.endpoints["get-run"]) {
		return nil, fmt.Errorf("webhook %s: the task and run groups need App.Dispatcher", w.cfg.Name)
	}
	w.withConsole = w.console() && !deps.NoConsole && deps.Dispatcher != nil
	r := chi.NewRouter()
	r.Use(edge.JSONBodies)
	cfg := apidocs.Config(w.cfg.Title, deps.Version)
	cfg.Transformers = append(cfg.Transformers, edge.ErrorBodies(deps.Logger))
	cfg.Info.Description = w.cfg.Description
	if w.cfg.PathPrefix != "" {
		cfg.Servers = []*huma.Server{{URL: w.cfg.PathPrefix}}
	}
	// Groups in the order a reader meets them, each with what it is for.
	tags := []*huma.Tag{
		{Name: GroupCore, Description: "Health and the caller's identity."},
		{Name: GroupTask, Description: "The tasks this environment allows, and starting runs of them."},
		{Name: GroupRun, Description: "Following, listing and aborting your runs."},
		{Name: GroupNodes, Description: "Node inventories and the queue, for the admin group."},
	}
	cfg.Tags = lo.Filter(tags, func(t *huma.Tag, _ int) bool {
		return lo.SomeBy(groupEndpoints[t.Name], w.Serves)
	})
	api := apidocs.New(r, cfg)
	edge.DescribePhases(api)
	h := &handlers{w: w, deps: deps, api: api}
	h.register(api)
	apidocs.Finish(api, environments.DocPolicy(&w.cfg.Settings, w.PublicPaths()))
	if w.withConsole {
		// The console asks r, the API, as the caller: the same handlers
		// decide what it shows.
		c, err := console.New(console.Config{
			API: r, Prefix: w.cfg.PathPrefix, Title: w.cfg.Title, Dispatcher: deps.Dispatcher,
			Serves: w.Serves, Logger: deps.Logger,
		})
		if err != nil {
			return nil, fmt.Errorf("webhook %s: %w", w.cfg.Name, err)
		}
		r.Mount("/console", c.Handler())
	}
	return r, nil
}

// console reports whether the environment serves the console: unless
// turned off, wherever it serves runs to show.
func (w *Environment) console() bool { return !w.cfg.NoConsole && w.Serves("get-run") }

// runURL is the path of a run, as the caller sees it (with the prefix).
func (w *Environment) runURL(name string) string {
	return path.Join("/", w.cfg.PathPrefix, "run", name)
}

// PublicPaths implements environments.PublicPather: the console's
// script and stylesheet need no credentials, so the sign-in page may use
// them too.
func (w *Environment) PublicPaths() []string {
	p := slices.Concat([]string{"/health"}, apidocs.Paths)
	if w.withConsole {
		p = append(p, "/console/static/*")
	}
	return p
}

// BrowserPaths implements environments.BrowserPather: a browser refused
// at the console is sent to sign in.
func (w *Environment) BrowserPaths() []string {
	if !w.withConsole {
		return nil
	}
	return []string{"/console", "/console/*"}
}
