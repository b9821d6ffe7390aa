package edge

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/middleware"
)

func TestBoundStream(t *testing.T) {
	t.Parallel()
	soon := time.Now().Add(time.Minute)
	for name, tc := range map[string]struct {
		id   *middleware.Identity
		want time.Duration // from now, about
	}{
		"no identity":             {nil, MaxStream},
		"identity without expiry": {&middleware.Identity{Subject: "alice"}, MaxStream},
		"session ending sooner":   {&middleware.Identity{Subject: "alice", Expiry: soon}, time.Minute},
		"token ending later":      {&middleware.Identity{Subject: "alice", Expiry: time.Now().Add(time.Hour)}, MaxStream},
	} {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			if tc.id != nil {
				ctx = middleware.WithIdentity(ctx, *tc.id)
			}
			sctx, cancel := BoundStream(ctx)
			defer cancel()
			deadline, ok := sctx.Deadline()
			require.True(t, ok)
			require.WithinDuration(t, time.Now().Add(tc.want), deadline, 5*time.Second)
		})
	}
}
