package environments

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/taskgate/taskgate/middleware"
	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// Environment is something an App serves: the prebuilt webhook environment,
// an app of the user's own, a proxied server. The App calls Build once at
// start, then puts the passthrough auth and the limits of Settings in front
// of the handler it returns (see Wrap).
type Environment interface {
	// Settings returns the environment's shared settings. The App reads them
	// before Build and never changes them.
	Settings() *Settings
	// Build returns the environment's handler. Paths it sees are relative to
	// Settings().PathPrefix.
	Build(deps *Deps) (http.Handler, error)
}

// Settings are what every kind of environment has.
type Settings struct {
	// Name identifies the environment: a lowercase DNS label. Required.
	Name string
	// Title and Description head the environment's OpenAPI document.
	Title       string
	Description string
	// PathPrefix mounts the environment under a path ("/team-a"); "" is root.
	PathPrefix string
	// Label overrides the URL label (Modal's custom label). It is validated,
	// not normalized; an invalid label is an error at start.
	Label string
	// CustomDomains route requests by Host to this environment: exact
	// ("api.example.com") or wildcard ("*.example.com").
	CustomDomains []string
	// Auth decides who may call the environment.
	Auth Auth
	// Limits bound what one environment may take in.
	Limits Limits
	// OnStart runs before the App serves; OnStop after it stopped serving.
	// They work like an ASGI lifespan: OnStop runs only if OnStart succeeded.
	OnStart func(ctx context.Context) error
	OnStop  func(ctx context.Context) error
}

// Auth settings of an environment.
type Auth struct {
	// Disabled serves every route without credentials (Flyte's
	// requires_auth=False). Credentials, when sent, are still verified.
	Disabled bool
	// Exclude lists further paths served without credentials, matched exactly
	// against the cleaned path; an entry ending in "/*" matches a subtree.
	// /health, /docs and the OpenAPI documents are always excluded.
	Exclude []string
	// RequiredGroup, when set, answers 403 to a verified caller outside it.
	RequiredGroup string
}

// Limits of an environment. Zero values mean no limit, except MaxBodyBytes
// which defaults to DefaultMaxBodyBytes.
type Limits struct {
	// MaxInFlight is Modal's max_inputs: requests served at once. Excess
	// requests wait up to QueueTimeout, then get 429 with Retry-After. An
	// AppEnvironment counts only what its app's own code serves, direct
	// requests and queue replays together, not /health, docs or queue
	// routes (see AppEnvironment); the other kinds count every request.
	MaxInFlight  int
	QueueTimeout time.Duration
	// RateLimit requests per RateWindow per identity (429 with X-RateLimit-*).
	RateLimit  int
	RateWindow time.Duration
	// MaxBodyBytes caps a request body (413 beyond), at most 4 GiB.
	MaxBodyBytes int64
}

// DefaultMaxBodyBytes caps request bodies when Limits.MaxBodyBytes is zero.
const DefaultMaxBodyBytes = 10 << 20

// MaxBodyLimit is the largest MaxBodyBytes an environment may set.
const MaxBodyLimit = 4 << 30

// Validate checks the settings every environment kind shares. Each
// kind's constructor calls it, and Wrap again, since settings are a
// struct the user may change until the App starts.
func (s *Settings) Validate() error {
	if !tasks.ValidName(s.Name) {
		return fmt.Errorf("environment name %q is not a lowercase DNS label", s.Name)
	}
	if s.PathPrefix != "" && (s.PathPrefix[0] != '/' || s.PathPrefix[len(s.PathPrefix)-1] == '/') {
		return fmt.Errorf("environment %s: PathPrefix %q must start with / and not end with /", s.Name, s.PathPrefix)
	}
	if s.Limits.MaxBodyBytes < 0 || s.Limits.MaxBodyBytes > MaxBodyLimit {
		return fmt.Errorf("environment %s: Limits.MaxBodyBytes %d outside [0, 4 GiB]", s.Name, s.Limits.MaxBodyBytes)
	}
	if s.Limits.MaxInFlight < 0 || s.Limits.RateLimit < 0 || s.Limits.QueueTimeout < 0 || s.Limits.RateWindow < 0 {
		return fmt.Errorf("environment %s: negative limit", s.Name)
	}
	return nil
}

// Deps are the App's parts an environment may use, handed to it at Build:
// the logger, the task registry and dispatcher, the authentication, and
// the URL settings. An environment keeps what it needs; it owns none of
// them.
type Deps struct {
	Logger   *slog.Logger
	Registry *tasks.Registry
	// Dispatcher submits and follows runs; nil for an App without tasks.
	Dispatcher *dispatch.Dispatcher
	// Holder places the replicas of environments that hold resources
	// (a server on a GPU) through the Dispatcher's scheduler; nil for an
	// App without a Dispatcher.
	Holder Holder
	// Authenticator verifies credentials; nil refuses every credential.
	Authenticator middleware.Authenticator
	// Extractors find credentials; nil means Bearer, fal's Key, then the
	// session cookie.
	Extractors []middleware.Extractor
	// AdminGroup members see every run, /nodes and /queue.
	AdminGroup string
	// Version of the service, shown in OpenAPI documents.
	Version string
	// URLs builds public URLs of environments.
	URLs URLSettings
	// NoConsole turns off the web console of every webhook environment
	// (App.NoConsole).
	NoConsole bool
}

// URLSettings are Modal's URL rules: <workspace>[-<suffix>]--<label>[-dev].<base>.
type URLSettings struct {
	Workspace  string
	EnvSuffix  string
	BaseDomain string
	// Scheme defaults to https.
	Scheme string
	// Dev appends -dev to labels (development mode).
	Dev bool
	// App is the application name, the first part of default labels.
	App string
}
