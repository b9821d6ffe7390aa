package client_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/client"
	"github.com/taskgate/taskgate/environments"
	"github.com/taskgate/taskgate/environments/webhook"
	"github.com/taskgate/taskgate/examples/quickstart/demo"
	"github.com/taskgate/taskgate/tasks"
)

func TestRunEchoIsTyped(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := newClient(t, serve(t), aliceToken)

	out, err := client.Run(ctx, c, demo.Echo, demo.EchoInput{Message: "hi"})
	require.NoError(t, err)
	require.Equal(t, demo.EchoOutput{Message: "hi"}, out)

	// The retried attempts of flaky are one run that succeeds.
	flaky, err := client.Run(ctx, c, demo.Flaky, demo.FlakyInput{Failures: 1})
	require.NoError(t, err)
	require.Equal(t, 2, flaky.Attempt)
}

func TestRunThatFailsIsARunError(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := newClient(t, serve(t), aliceToken)

	_, err := client.Run(ctx, c, boom, struct{}{})
	var runErr *client.RunError
	require.ErrorAs(t, err, &runErr)
	require.Equal(t, tasks.PhaseFailed, runErr.Phase())
	require.Contains(t, runErr.Run.Error, "boom on purpose")
	require.Equal(t, "test/development/boom", runErr.Run.Task)
	_, err = client.Outputs[struct{}](ctx, c, runErr.Run.Name)
	require.ErrorContains(t, err, "has not succeeded")
}

func TestInvalidInputsAreFieldErrors(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := newClient(t, serve(t), aliceToken)

	cases := map[string]struct {
		inputs   any
		location string
	}{
		"wrong type":       {json.RawMessage(`{"message":5}`), "body.message"},
		"missing property": {json.RawMessage(`{}`), "body.message"},
		"unknown property": {map[string]any{"message": "hi", "extra": 1}, "body.extra"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := c.Submit(ctx, "demo/development/echo", tc.inputs, nil)
			var apiErr *client.Error
			require.ErrorAs(t, err, &apiErr)
			require.Equal(t, http.StatusUnprocessableEntity, apiErr.Status)
			require.Equal(t, "Unprocessable Entity", apiErr.Title)
			require.NotEmpty(t, apiErr.Detail)
			require.NotEmpty(t, apiErr.RequestID)
			require.NotEmpty(t, apiErr.Errors)
			require.Equal(t, tc.location, apiErr.Errors[0].Location, "%+v", apiErr.Errors)
			require.NotEmpty(t, apiErr.Errors[0].Message)
			require.Contains(t, err.Error(), tc.location)
		})
	}
	// No run was created by any of them.
	n := 0
	for _, err := range c.List(ctx, nil) {
		require.NoError(t, err)
		n++
	}
	require.Zero(t, n)

	_, err := c.Submit(ctx, "demo/development/nope", nil, nil)
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusNotFound, apiErr.Status)
	_, err = c.Submit(ctx, "echo", nil, nil)
	require.ErrorContains(t, err, "project/domain/name")
}

func TestSomeoneElsesRunIsNotFound(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	base := serve(t)
	alice, bob, admin := newClient(t, base, aliceToken), newClient(t, base, bobToken), newClient(t, base, adminToken)

	sub, err := client.Start(ctx, alice, demo.Echo, demo.EchoInput{Message: "mine"}, nil)
	require.NoError(t, err)
	for _, call := range []func() error{
		func() error { _, err := bob.Get(ctx, sub.Name); return err },
		func() error { _, err := bob.IO(ctx, sub.Name); return err },
		func() error { return bob.Abort(ctx, sub.Name, "not mine") },
		func() error { _, err := bob.Wait(ctx, sub.Name, nil); return err },
	} {
		err := call()
		var apiErr *client.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusNotFound, apiErr.Status, "%v", err)
		require.Equal(t, "run not found", apiErr.Detail)
	}
	// The admin group sees it.
	st, err := admin.Wait(ctx, sub.Name, nil)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseSucceeded, st.Phase)
}

func TestListPagesAndFilters(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	base := serve(t)
	c := newClient(t, base, aliceToken)

	var names []string
	for _, msg := range []string{"a", "b", "c", "d", "e"} {
		sub, err := client.Start(ctx, c, demo.Echo, demo.EchoInput{Message: msg}, nil)
		require.NoError(t, err)
		names = append(names, sub.Name)
	}
	boomRun, err := client.Start(ctx, c, boom, struct{}{}, nil)
	require.NoError(t, err)
	_, err = c.Wait(ctx, boomRun.Name, nil)
	require.NoError(t, err)
	_, err = client.Start(ctx, newClient(t, base, bobToken), demo.Echo, demo.EchoInput{Message: "bob's"}, nil)
	require.NoError(t, err)

	// Pages of 2: every echo run of alice, newest first, once each.
	var got []string
	pages := 0
	cursor := ""
	for {
		page, err := c.ListPage(ctx, &client.ListOptions{Task: "demo/development/echo", PageSize: 2}, cursor)
		require.NoError(t, err)
		pages++
		for _, r := range page.Runs {
			got = append(got, r.Name)
		}
		if page.NextCursor == "" {
			break
		}
		cursor = page.NextCursor
	}
	require.Equal(t, 3, pages)
	want := slices.Clone(names)
	slices.Reverse(want)
	require.Equal(t, want, got)

	var iterated []string
	for r, err := range c.List(ctx, &client.ListOptions{Task: "demo/development/echo", PageSize: 2}) {
		require.NoError(t, err)
		iterated = append(iterated, r.Name)
	}
	require.Equal(t, want, iterated, "List reads every page")

	// Breaking off stops reading.
	for r, err := range c.List(ctx, &client.ListOptions{PageSize: 1}) {
		require.NoError(t, err)
		require.Equal(t, boomRun.Name, r.Name)
		break
	}

	var failed []string
	for r, err := range c.List(ctx, &client.ListOptions{Phases: []tasks.Phase{tasks.PhaseFailed}}) {
		require.NoError(t, err)
		failed = append(failed, r.Name)
	}
	require.Equal(t, []string{boomRun.Name}, failed)

	// all=true is for admins: 403 for alice, everyone's runs for root.
	for _, err := range c.List(ctx, &client.ListOptions{All: true}) {
		var apiErr *client.Error
		require.ErrorAs(t, err, &apiErr)
		require.Equal(t, http.StatusForbidden, apiErr.Status)
	}
	all := 0
	for _, err := range newClient(t, base, adminToken).List(ctx, &client.ListOptions{All: true, PageSize: 3}) {
		require.NoError(t, err)
		all++
	}
	require.Equal(t, 7, all)
}

func TestAbortASleepingRun(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := newClient(t, serve(t), aliceToken)

	sub, err := client.Start(ctx, c, demo.Sleep, demo.SleepInput{Seconds: 600}, nil)
	require.NoError(t, err)
	// Abort once it runs, so the task's context is what stops it.
	var seen []tasks.Phase
	for ev, err := range c.Events(ctx, sub.Name) {
		require.NoError(t, err)
		seen = append(seen, ev.Phase)
		if ev.Phase == tasks.PhaseRunning {
			require.NoError(t, c.Abort(ctx, sub.Name, "changed my mind"))
		}
	}
	require.Equal(t, tasks.PhaseQueued, seen[0])
	require.Equal(t, tasks.PhaseAborted, seen[len(seen)-1])
	require.Contains(t, seen, tasks.PhaseRunning)

	st, err := c.Wait(ctx, sub.Name, nil)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseAborted, st.Phase)
	require.Contains(t, st.Error, "changed my mind")

	// Aborting a finished run is a 409.
	err = c.Abort(ctx, sub.Name, "again")
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusConflict, apiErr.Status)
}

func TestWaitShowsTheQueuePosition(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := newClient(t, serve(t), aliceToken)

	// The node has one A100: a second train waits for the first.
	first, err := client.Start(ctx, c, demo.Train, demo.TrainInput{Seconds: 600}, nil)
	require.NoError(t, err)
	second, err := client.Start(ctx, c, demo.Train, demo.TrainInput{}, nil)
	require.NoError(t, err)
	var waiting *client.RunStatus
	done := make(chan error, 1)
	statuses := make(chan client.RunStatus, 64)
	go func() {
		_, err := c.Wait(ctx, second.Name, &client.WaitOptions{
			PollInterval: 50 * time.Millisecond,
			OnStatus: func(st *client.RunStatus) {
				select {
				case statuses <- *st:
				default:
				}
			},
		})
		done <- err
	}()
	for st := range statuses {
		if st.QueuePosition > 0 && st.Reason != "" {
			waiting = &st
			break
		}
	}
	require.Equal(t, 1, waiting.QueuePosition)
	require.NotEqual(t, tasks.PhaseRunning, waiting.Phase)
	require.NoError(t, c.Abort(ctx, first.Name, ""))
	require.NoError(t, <-done)
	st, err := c.Get(ctx, second.Name)
	require.NoError(t, err)
	require.Equal(t, tasks.PhaseSucceeded, st.Phase)
}

// An environment without the event stream: Wait polls instead.
func TestWaitPollsWithoutTheEventStream(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	env := webhook.MustNew(webhook.Config{
		Settings:  environments.Settings{Name: "nostream"},
		Groups:    []string{webhook.GroupCore, webhook.GroupTask},
		Endpoints: []string{"get-run", "get-run-io"},
	})
	c := newClient(t, serve(t, env), aliceToken)

	out, err := client.Run(ctx, c, demo.Sleep, demo.SleepInput{Seconds: 0.3})
	require.NoError(t, err)
	require.Positive(t, out.Slept)
	sub, err := client.Start(ctx, c, demo.Echo, demo.EchoInput{Message: "x"}, nil)
	require.NoError(t, err)
	for _, err := range c.Events(ctx, sub.Name) {
		var apiErr *client.Error
		require.ErrorAs(t, err, &apiErr, "no stream here")
		require.Equal(t, http.StatusNotFound, apiErr.Status)
	}
}

func TestSubmitWithPreferWaitAndIdempotencyKey(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	c := newClient(t, serve(t), aliceToken)

	opts := &client.SubmitOptions{IdempotencyKey: "same-key", Wait: 10 * time.Second}
	first, err := c.Submit(ctx, "demo/development/echo", demo.EchoInput{Message: "once"}, opts)
	require.NoError(t, err)
	require.True(t, first.Done)
	require.JSONEq(t, `{"message":"once"}`, string(first.Outputs))
	again, err := c.Submit(ctx, "demo/development/echo", demo.EchoInput{Message: "once"}, opts)
	require.NoError(t, err)
	require.Equal(t, first.Name, again.Name)

	_, err = c.Submit(ctx, "demo/development/echo", demo.EchoInput{Message: "other"}, opts)
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusConflict, apiErr.Status)
}

func TestMeTasksNodesQueue(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	base := serve(t)
	alice, admin := newClient(t, base, aliceToken), newClient(t, base, adminToken)

	me, err := alice.Me(ctx)
	require.NoError(t, err)
	require.Equal(t, client.Identity{Subject: "alice", Name: "alice", Groups: []string{"ml"}}, *me)

	ts, err := alice.Tasks(ctx)
	require.NoError(t, err)
	ids := make([]string, len(ts))
	for i, task := range ts {
		ids[i] = task.ID()
	}
	require.Contains(t, ids, "demo/development/echo")

	_, err = alice.Nodes(ctx)
	var apiErr *client.Error
	require.ErrorAs(t, err, &apiErr)
	require.Equal(t, http.StatusForbidden, apiErr.Status)

	nodes, err := admin.Nodes(ctx)
	require.NoError(t, err)
	require.Len(t, nodes, 1)
	require.Equal(t, 1, nodes[0].Free["A100-40GB"], "%+v", nodes[0])
	q, err := admin.Queue(ctx)
	require.NoError(t, err)
	require.NotNil(t, q.Runs)
}

// TestTypesMirrorTheServer reads every kind of answer with unknown fields
// refused: a field the server gained and the client lacks fails here.
func TestTypesMirrorTheServer(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	base := serve(t)
	c := newClient(t, base, adminToken)
	client.Strict(c)

	sub, err := c.Submit(ctx, "demo/development/train", demo.TrainInput{Epochs: 1}, &client.SubmitOptions{Wait: 10 * time.Second})
	require.NoError(t, err)
	st, err := c.Wait(ctx, sub.Name, nil)
	require.NoError(t, err)
	require.NotEmpty(t, st.Attempts)
	require.NotEmpty(t, st.Devices)
	_, err = c.IO(ctx, sub.Name)
	require.NoError(t, err)
	for _, err := range c.List(ctx, &client.ListOptions{All: true}) {
		require.NoError(t, err)
	}
	for _, err := range c.Events(ctx, sub.Name) {
		require.NoError(t, err)
	}
	_, err = c.Me(ctx)
	require.NoError(t, err)
	_, err = c.Tasks(ctx)
	require.NoError(t, err)
	nodes, err := c.Nodes(ctx)
	require.NoError(t, err)
	require.NotEmpty(t, nodes[0].Devices)
	_, err = c.Queue(ctx)
	require.NoError(t, err)
}

func TestNewRefusesBadSettings(t *testing.T) {
	t.Parallel()
	for _, base := range []string{"", "127.0.0.1:8080", "ftp://x", "http://", "http://h/?q=1", "http://u:p@h"} {
		_, err := client.New(base, nil)
		require.Error(t, err, base)
	}
	_, err := client.New("http://127.0.0.1:1", &client.Options{Retry: client.RetryPolicy{MaxAttempts: -1}})
	require.Error(t, err)
	c, err := client.New("http://127.0.0.1:8080/team-a/", nil)
	require.NoError(t, err)
	require.Equal(t, "http://127.0.0.1:8080/team-a", c.BaseURL())
}

func TestErrorsAreMatchable(t *testing.T) {
	t.Parallel()
	var err error = &client.RunError{Run: &client.RunStatus{Name: "r1", Task: "a/b/c", Phase: tasks.PhaseTimedOut, Error: "too slow"}}
	require.Equal(t, "run r1 (a/b/c) timed_out: too slow", err.Error())
	var runErr *client.RunError
	require.True(t, errors.As(err, &runErr))
}
