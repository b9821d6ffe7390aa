package tasks_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware/identity"
	"github.com/taskgate/taskgate/tasks"
)

type addIn struct {
	A int `json:"a"`
	B int `json:"b"`
}
type addOut struct {
	Sum int `json:"sum"`
}

func add(_ context.Context, in addIn) (addOut, error) { return addOut{Sum: in.A + in.B}, nil }

func TestDefineRefusesBadDefinitions(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		project, domain, name string
		opts                  *tasks.Options
		quote                 string
	}{
		"upper-case name":     {"demo", "dev", "Add", nil, `"Add"`},
		"underscore":          {"demo", "dev", "my_task", nil, `"my_task"`},
		"empty project":       {"", "dev", "add", nil, `""`},
		"leading dash":        {"demo", "-dev", "add", nil, `"-dev"`},
		"unknown GPU":         {"demo", "dev", "add", &tasks.Options{Resources: tasks.Resources{GPU: "Z9000:1"}}, "Z9000"},
		"zero GPUs":           {"demo", "dev", "add", &tasks.Options{Resources: tasks.Resources{GPU: "A100:0"}}, "A100:0"},
		"too many GPUs":       {"demo", "dev", "add", &tasks.Options{Resources: tasks.Resources{GPU: "H100:9"}}, "H100:9"},
		"bad memory":          {"demo", "dev", "add", &tasks.Options{Resources: tasks.Resources{Memory: "8Gb"}}, "8Gb"},
		"bad MIG":             {"demo", "dev", "add", &tasks.Options{Resources: tasks.Resources{GPU: "H100:9g.99gb"}}, "9g.99gb"},
		"bad fallback":        {"demo", "dev", "add", &tasks.Options{Resources: tasks.Resources{GPU: "H100:8", GPUFallbacks: []string{"A100-80GB:-1"}}}, "A100-80GB:-1"},
		"zero attempts":       {"demo", "dev", "add", &tasks.Options{Retry: &tasks.RetryPolicy{MaxAttempts: 0, Multiplier: 1}}, "max attempts"},
		"multiplier below 1":  {"demo", "dev", "add", &tasks.Options{Retry: &tasks.RetryPolicy{MaxAttempts: 2, Multiplier: 0.5}}, "multiplier"},
		"jitter above 1":      {"demo", "dev", "add", &tasks.Options{Retry: &tasks.RetryPolicy{MaxAttempts: 2, Multiplier: 2, Jitter: 2}}, "jitter"},
		"initial above max":   {"demo", "dev", "add", &tasks.Options{Retry: &tasks.RetryPolicy{MaxAttempts: 2, Multiplier: 2, InitialBackoff: time.Hour, MaxBackoff: time.Second}}, "initial backoff"},
		"negative timeout":    {"demo", "dev", "add", &tasks.Options{Timeout: -time.Second}, "negative timeout"},
		"name over 63 chars":  {"demo", "dev", strings.Repeat("a", 64), nil, strings.Repeat("a", 64)},
		"domain with a slash": {"demo", "dev/x", "add", nil, `"dev/x"`},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := tasks.Define(tc.project, tc.domain, tc.name, add, tc.opts)
			require.ErrorIs(t, err, tasks.ErrInvalidDefinition)
			require.Contains(t, err.Error(), tc.quote, "the error quotes the offending text")
		})
	}
}

func TestVersionIsDerivedFromTheDefinition(t *testing.T) {
	t.Parallel()
	a1 := tasks.MustDefine("demo", "dev", "add", add, nil)
	a2 := tasks.MustDefine("demo", "dev", "add", add, nil)
	require.Equal(t, a1.Definition().Version, a2.Definition().Version, "deterministic")
	gpu := tasks.MustDefine("demo", "dev", "add", add, &tasks.Options{Resources: tasks.Resources{GPU: "A100:1"}})
	require.NotEqual(t, a1.Definition().Version, gpu.Definition().Version, "resources change the version")
	type addIn2 struct {
		A int `json:"a"`
	}
	other := tasks.MustDefine("demo", "dev", "add", func(context.Context, addIn2) (addOut, error) { return addOut{}, nil }, nil)
	require.NotEqual(t, a1.Definition().Version, other.Definition().Version, "input type changes the version")
	given := tasks.MustDefine("demo", "dev", "add", add, &tasks.Options{Version: "v7"})
	require.Equal(t, "v7", given.Definition().Version)
}

func TestRegistryRefusesDuplicates(t *testing.T) {
	t.Parallel()
	r := tasks.NewRegistry()
	a := tasks.MustDefine("demo", "dev", "add", add, nil)
	b := tasks.MustDefine("demo", "dev", "sub", add, nil)
	require.NoError(t, r.Register(a))
	err := r.Register(b, tasks.MustDefine("demo", "dev", "add", add, &tasks.Options{Version: "v2"}))
	require.ErrorIs(t, err, tasks.ErrDuplicateTask)
	_, ok := r.Lookup("demo", "dev", "sub")
	require.False(t, ok, "a failed Register registers none of its tasks")
	require.NoError(t, r.Register(b))
	require.Len(t, r.All(), 2)
	require.Equal(t, "demo/dev/add", r.All()[0].ID())
}

func TestInvokeRefusesUnknownFieldsAndMapsErrors(t *testing.T) {
	t.Parallel()
	d := tasks.MustDefine("demo", "dev", "add", add, nil).Definition()
	out, err := d.Invoke(context.Background(), json.RawMessage(`{"a":2,"b":3}`))
	require.NoError(t, err)
	require.JSONEq(t, `{"sum":5}`, string(out))

	_, err = d.Invoke(context.Background(), json.RawMessage(`{"a":2,"c":3}`))
	var perm *tasks.PermanentError
	require.ErrorAs(t, err, &perm, "undecodable inputs never succeed on retry")

	failing := tasks.MustDefine("demo", "dev", "fail", func(context.Context, addIn) (addOut, error) {
		return addOut{}, tasks.RetryAfter(3 * time.Second)
	}, nil).Definition()
	_, err = failing.Invoke(context.Background(), nil)
	var ra *tasks.RetryAfterError
	require.ErrorAs(t, err, &ra)
	require.Equal(t, 3*time.Second, ra.Delay)
}

func TestBackoffGrowsAndIsCapped(t *testing.T) {
	t.Parallel()
	p := tasks.RetryPolicy{MaxAttempts: 10, InitialBackoff: time.Second, MaxBackoff: 10 * time.Second, Multiplier: 2, Jitter: 0.5}
	require.Equal(t, time.Second, p.Backoff(1, 0.5), "u=0.5 is no jitter")
	require.Equal(t, 4*time.Second, p.Backoff(3, 0.5))
	require.Equal(t, 10*time.Second, p.Backoff(8, 0.5), "capped")
	require.Equal(t, 500*time.Millisecond, p.Backoff(1, 0), "jitter spreads down")
	require.Equal(t, 10*time.Second, p.Backoff(8, 0.999), "and never above the cap")
}

func TestControlErrors(t *testing.T) {
	t.Parallel()
	cause := errors.New("bad weights")
	require.ErrorIs(t, tasks.Permanent(cause), cause, "Permanent keeps its cause")
	require.Error(t, tasks.Permanent(nil), "Permanent(nil) still fails the run")
	require.Contains(t, tasks.RetryAfter(time.Minute).Error(), "1m0s")
}

func TestRunContextCarriesDevicesIdentityAndLogger(t *testing.T) {
	t.Parallel()
	devs := []tasks.Device{{Index: 1, Type: "A100-80GB"}, {Index: 3, Type: "A100-80GB"}}
	ctx := tasks.WithRunInfo(context.Background(), tasks.RunInfo{
		Name: "r1", Attempt: 2, Devices: devs, Caller: identity.Identity{Subject: "alice"},
	})
	require.Equal(t, devs, tasks.Devices(ctx))
	id, ok := identity.FromContext(ctx)
	require.True(t, ok)
	require.Equal(t, "alice", id.Subject)
	require.NotNil(t, tasks.Logger(ctx))
	require.Equal(t, "1,3", tasks.VisibleDevices(devs))

	mig := []tasks.Device{{Index: 0, UUID: "MIG-4b3c", Type: "H100", MIG: "3g.40gb"}}
	require.Equal(t, "MIG-4b3c", tasks.VisibleDevices(mig), "MIG partitions are named by UUID")
}
