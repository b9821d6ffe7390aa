package sqlstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// Transition implements store.Store.
//
// Changes of a batch that differ only by run (a scheduling round binding
// CPU runs to one node, or marking its unplaced runs waiting) are applied
// together: one UPDATE for the group, and the rows every change appends
// (attempts, events) in multi-row INSERTs. Changes of a run that appears
// more than once in the batch are applied one by one, in order.
func (s *Store) Transition(ctx context.Context, ts []store.Transition) ([]store.TransitionResult, error) {
	ts = cleanTransitions(ts)
	res := make([]store.TransitionResult, len(ts))
	err := s.withTx(ctx, func(tx Tx, notes *[]store.Notification) error {
		var buf appends
		for _, g := range groupTransitions(ts) {
			ms := make([]*store.Transition, len(g))
			for j, i := range g {
				ms[j] = &ts[i]
			}
			rs, err := s.transitionRuns(ctx, tx, ms, "", &buf)
			if err != nil {
				if len(g) == 1 {
					return fmt.Errorf("transition %s to %s: %w", ms[0].Run, ms[0].To, err)
				}
				return fmt.Errorf("transition %d runs to %s: %w", len(g), ms[0].To, err)
			}
			for j, i := range g {
				res[i] = rs[j]
			}
		}
		for _, r := range res {
			for _, ev := range r.Events {
				*notes = append(*notes, store.Notification{Kind: store.NotifyEvent, Run: ev.Run, Seq: ev.Seq, Phase: ev.Phase, Node: r.Run.Node, Attempt: r.Run.Attempt,
					Delivery: r.Delivery && ev.Seq == r.Event.Seq})
			}
		}
		return s.flushAppends(ctx, tx, &buf)
	})
	if err != nil {
		return nil, err
	}
	return res, nil
}

// groupTransitions partitions the indexes of ts into groups applied by one
// transitionRuns each, in order: changes identical but for the run, the
// time and the outputs (a batch of finishes), of runs that no other change
// of ts touches, share a group (placed where its first member was); every
// other change is a group of one.
func groupTransitions(ts []store.Transition) [][]int {
	if len(ts) == 1 {
		return [][]int{{0}}
	}
	count := make(map[string]int, len(ts))
	for i := range ts {
		count[ts[i].Run]++
	}
	var groups [][]int
	byKey := map[string]int{} // key -> index in groups
	for i := range ts {
		t := &ts[i]
		if count[t.Run] > 1 {
			groups = append(groups, []int{i})
			continue
		}
		k := groupKey(t)
		if g, ok := byKey[k]; ok {
			groups[g] = append(groups[g], i)
			continue
		}
		byKey[k] = len(groups)
		groups = append(groups, []int{i})
	}
	return groups
}

// groupKey is every field of t but Run, At and Outputs, which each member
// of a group sets for itself.
func groupKey(t *store.Transition) string {
	var sb strings.Builder
	sb.WriteString(jsonList(phaseStrings(t.From)))
	fmt.Fprintf(&sb, "\x00%d\x00%s\x00%s", t.Attempt, t.Node, t.To)
	if t.Bind != nil {
		fmt.Fprintf(&sb, "\x00bind\x00%s\x00%s", t.Bind.Node, jsonList(t.Bind.Devices))
	}
	fmt.Fprintf(&sb, "\x00%t\x00%s\x00%s\x00%s\x00%d\x00%t\x00%t\x00%s",
		t.Start, t.AttemptPhase, t.AttemptError, t.Error, nanos(t.NotBefore), t.CountFailure, t.Interrupted, t.WaitReason)
	return sb.String()
}

func phaseStrings(ps []tasks.Phase) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = string(p)
	}
	return out
}

// transition applies t alone, writing what it appends at once.
// Its only caller, RequestAbort, has cleaned the reason its text comes from.
func (s *Store) transition(ctx context.Context, tx Tx, t *store.Transition, abortReason string) (store.TransitionResult, error) {
	var buf appends
	res, err := s.transitionRuns(ctx, tx, []*store.Transition{t}, abortReason, &buf)
	if err != nil {
		return store.TransitionResult{}, err
	}
	return res[0], s.flushAppends(ctx, tx, &buf)
}

// maxCaseRows bounds the runs of one UPDATE whose values differ per run:
// each row evaluates a CASE over the runs of its statement.
const maxCaseRows = 32

// transitionRuns applies ms, changes of distinct runs identical but for
// the run, the time and the outputs (groupKey), with one UPDATE per chunk
// of runs, and returns the results in the order of ms. The rows it
// appends (the attempts it starts, the events) go to buf, written by
// flushAppends before anything reads them; the attempts it closes are
// updated per chunk.
func (s *Store) transitionRuns(ctx context.Context, tx Tx, ms []*store.Transition, abortReason string, buf *appends) ([]store.TransitionResult, error) {
	t := ms[0]
	if !t.To.Valid() {
		return nil, fmt.Errorf("invalid phase %q", t.To)
	}
	if t.Start && (t.Bind == nil || t.To != tasks.PhaseRunning) {
		return nil, errors.New("transition: Start needs Bind and To running")
	}
	from := t.From
	if len(from) == 0 {
		from = activePhases
	}
	for _, p := range from {
		if p.Terminal() {
			return nil, fmt.Errorf("terminal phase %q in From", p)
		}
	}
	results := make([]store.TransitionResult, len(ms))
	pos := make(map[string]int, len(ms))
	for i, m := range ms {
		pos[m.Run] = i
	}
	idx := make([]int, len(ms))
	for i := range idx {
		idx[i] = i
	}
	limit := s.d.MaxParams - 32 // the parameters that are not per run
	for _, m := range ms[1:] {
		if !m.At.Equal(t.At) || len(m.Outputs) > 0 || len(t.Outputs) > 0 {
			limit = min(limit, maxCaseRows) // values per run: CASE
			break
		}
	}
	for _, chunk := range chunks(idx, limit) {
		q, args := s.transitionUpdate(ms, chunk, from, abortReason)
		runs, err := s.queryRuns(ctx, tx, q, args...)
		if err != nil {
			return nil, err
		}
		var closes []attemptChange
		for _, run := range runs {
			i, ok := pos[run.Name]
			if !ok {
				return nil, fmt.Errorf("update returned run %s not asked for", run.Name)
			}
			r, err := s.afterTransition(ctx, tx, ms[i], run, from, &closes, buf)
			if err != nil {
				return nil, err
			}
			results[i] = r
		}
		if err := s.changeAttempts(ctx, tx, t, closes); err != nil {
			return nil, err
		}
	}
	return results, nil
}

// transitionUpdate is the UPDATE … RETURNING that applies the changes
// ms[chunk] to their runs.
func (s *Store) transitionUpdate(ms []*store.Transition, chunk []int, from []tasks.Phase, abortReason string) (string, []any) {
	t := ms[chunk[0]]
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	names := make([]string, len(chunk))
	for j, i := range chunk {
		names[j] = arg(ms[i].Run)
	}
	// perRun is the value of a column that may differ per run: one
	// parameter when it does not in this chunk, else a CASE on the name.
	perRun := func(v func(m *store.Transition) any, same func(a, b *store.Transition) bool, typ string) string {
		uniform := true
		for _, i := range chunk[1:] {
			uniform = uniform && same(ms[chunk[0]], ms[i])
		}
		if uniform {
			return arg(v(t))
		}
		var b strings.Builder
		b.WriteString("(CASE name")
		for j, i := range chunk {
			fmt.Fprintf(&b, " WHEN %s THEN %s", names[j], s.d.cast(arg(v(ms[i])), typ))
		}
		b.WriteString(" END)")
		return b.String()
	}
	at := func() string {
		return perRun(func(m *store.Transition) any { return nanos(m.At) },
			func(a, b *store.Transition) bool { return a.At.Equal(b.At) }, "bigint")
	}

	step := 1 // events the change records
	if t.Start {
		step = 2
	}
	var set strings.Builder
	to := arg(string(t.To))
	fmt.Fprintf(&set, `phase = %s, event_seq = event_seq + (CASE WHEN phase = %s THEN 0 ELSE %d END), wait_reason = %s`,
		to, to, step, arg(t.WaitReason))
	if t.Bind != nil {
		fmt.Fprintf(&set, `, attempt = attempt + 1, node = %s, devices = %s, error = ''`, arg(t.Bind.Node), arg(jsonList(t.Bind.Devices)))
	}
	switch {
	case t.To == tasks.PhaseRunning:
		fmt.Fprintf(&set, `, started_at = (CASE WHEN started_at = 0 THEN %s ELSE started_at END)`, at())
	case t.To == tasks.PhaseQueued:
		fmt.Fprintf(&set, `, not_before = %s, node = '', devices = '', error = %s`, arg(nanos(t.NotBefore)), arg(t.AttemptError))
	case t.To.Terminal():
		fmt.Fprintf(&set, `, finished_at = %s, error = %s`, at(), arg(t.Error))
		if t.To == tasks.PhaseSucceeded {
			fmt.Fprintf(&set, `, outputs = %s`, perRun(func(m *store.Transition) any { return bytesOrNil(m.Outputs) },
				func(a, b *store.Transition) bool { return bytes.Equal(a.Outputs, b.Outputs) }, s.d.blobType()))
		}
	}
	if abortReason != "" {
		fmt.Fprintf(&set, `, abort_reason = %s`, arg(abortReason))
	}
	if t.CountFailure {
		set.WriteString(`, failures = failures + 1`)
	}
	if t.Interrupted {
		set.WriteString(`, interruptions = interruptions + 1`)
	}

	var q strings.Builder
	q.WriteString(`UPDATE runs SET ` + set.String())
	// The runs are found by name; "phase || ''" keeps the planner off the
	// phase index, which for a group of more than a few names SQLite would
	// otherwise prefer, walking every queued run of the backlog.
	q.WriteString(` WHERE (phase || '') IN (`)
	for i, p := range from {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteString(arg(string(p)))
	}
	q.WriteByte(')')
	if t.Attempt != 0 {
		fmt.Fprintf(&q, ` AND attempt = %s`, arg(t.Attempt))
	}
	if t.Node != "" {
		fmt.Fprintf(&q, ` AND node = %s`, arg(t.Node))
	}
	if len(names) == 1 {
		q.WriteString(` AND name = ` + names[0])
	} else {
		q.WriteString(` AND name IN (` + strings.Join(names, ",") + `)`)
	}
	q.WriteString(` RETURNING ` + runCols)
	return q.String(), args
}

// RequestAbort implements store.Store.
func (s *Store) RequestAbort(ctx context.Context, name, reason string, at time.Time) (store.AbortResult, error) {
	reason = cleanText(reason)
	var res store.AbortResult
	err := s.withTx(ctx, func(tx Tx, notes *[]store.Notification) error {
		runs, err := s.queryRuns(ctx, tx, `SELECT `+runCols+` FROM runs WHERE name = $1`+s.d.ForUpdate, name)
		if err != nil {
			return err
		}
		if len(runs) == 0 {
			return store.ErrNotFound
		}
		run := runs[0]
		switch run.Phase {
		case tasks.PhaseQueued, tasks.PhaseWaitingForResources:
			msg := "aborted"
			if reason != "" {
				msg += ": " + reason
			}
			r, err := s.transition(ctx, tx, &store.Transition{
				Run: name, From: []tasks.Phase{run.Phase}, To: tasks.PhaseAborted, At: at, Error: msg,
			}, nonEmpty(reason, "aborted"))
			if err != nil {
				return err
			}
			res = store.AbortResult{Run: r.Run, Terminal: true, Event: r.Event}
			*notes = append(*notes, store.Notification{Kind: store.NotifyEvent, Run: name, Seq: r.Event.Seq, Phase: r.Event.Phase, Node: r.Run.Node, Attempt: r.Run.Attempt,
				Delivery: r.Delivery})
		case tasks.PhaseInitializing, tasks.PhaseRunning:
			if _, err := tx.Exec(ctx, `UPDATE runs SET abort_requested = 1, abort_reason = $1 WHERE name = $2`,
				nonEmpty(reason, "aborted"), name); err != nil {
				return err
			}
			run.AbortRequested = true
			run.AbortReason = nonEmpty(reason, "aborted")
			res = store.AbortResult{Run: run}
			*notes = append(*notes, store.Notification{Kind: store.NotifyAbort, Run: name, Node: run.Node})
		default:
			res = store.AbortResult{Run: run}
			return store.ErrAlreadyDone
		}
		return nil
	})
	return res, err
}

// cleanTransitions returns ts with the text of its changes cleaned
// (cleanText), copied only when some needs it.
func cleanTransitions(ts []store.Transition) []store.Transition {
	out, copied := ts, false
	for i := range ts {
		t := &ts[i]
		e, ae, w := cleanText(t.Error), cleanText(t.AttemptError), cleanText(t.WaitReason)
		if e == t.Error && ae == t.AttemptError && w == t.WaitReason {
			continue
		}
		if !copied {
			out, copied = slices.Clone(ts), true
		}
		out[i].Error, out[i].AttemptError, out[i].WaitReason = e, ae, w
	}
	return out
}
