package scheduler

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/taskgate/taskgate/tasks"
)

// internedRequest is an interned tasks.Request: the runs of one task ask the same,
// and a backlog of a million of them keeps one copy of it and of its
// resolved options, not a million (issue 19: the leader's heap per waiting
// run). It goes when its last run does.
type internedRequest struct {
	key  string
	req  tasks.Request
	opts []option
	refs int
	// settled memoizes the settled reasons of this request's runs by
	// project during one QueueSummary (summary numbers it): a field
	// rather than a map keyed by request and project, whose lookups cost
	// most of the walk with a million runs waiting.
	summary uint64
	settled []projectReason
}

// projectReason is a settled reason of one project's runs.
type projectReason struct{ project, reason string }

// intern returns the interned internedRequest equal to req, made and counted for
// one more run; runID names the run in an error.
func (s *Scheduler) intern(runID string, req tasks.Request) (*internedRequest, error) {
	b := s.keyBuf[:0]
	b = strconv.AppendInt(b, req.MilliCPU, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, req.MemoryBytes, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, req.DiskBytes, 10)
	for _, g := range req.GPUs {
		// Each part ends with a byte no type or profile holds.
		b = append(b, 0)
		b = append(b, g.Type...)
		b = append(b, 0)
		b = append(b, g.MIG...)
		b = append(b, 0)
		b = strconv.AppendInt(b, int64(g.Count), 10)
	}
	s.keyBuf = b
	if rq, ok := s.requests[string(b)]; ok { // no allocation: a lookup
		rq.refs++
		return rq, nil
	}
	rq := &internedRequest{key: string(b), req: req, refs: 1}
	rq.req.GPUs = slices.Clone(req.GPUs)
	if len(req.GPUs) == 0 {
		rq.opts = []option{{shape: shapeKey{cpu: req.MilliCPU, mem: req.MemoryBytes}}}
	}
	for _, g := range req.GPUs {
		if g.Count < 1 || (g.MIG != "" && g.Count != 1) {
			return nil, fmt.Errorf("%w: run %q: GPU alternative %q", ErrInvalidRun, runID, g.String())
		}
		if g.Type != "" {
			if name, ok := tasks.CanonicalAccelerator(g.Type); ok {
				g.Type = name
			}
		}
		g.MIG = strings.ToLower(g.MIG)
		rq.opts = append(rq.opts, option{
			shape: shapeKey{pk: poolKey{typ: g.Type, mig: g.MIG}, count: g.Count, cpu: req.MilliCPU, mem: req.MemoryBytes},
			req:   g,
		})
	}
	s.internShapes(rq)
	s.requests[rq.key] = rq
	return rq, nil
}

// release drops r's reference to its internedRequest, forgetting the internedRequest and
// the shapes no other run needs.
func (s *Scheduler) release(r *runState) {
	rq := r.run.req
	if rq.refs--; rq.refs == 0 {
		s.releaseShapes(rq)
		delete(s.requests, rq.key)
	}
}

// internShapes points each of rq's options at its shared shape.
func (s *Scheduler) internShapes(rq *internedRequest) {
	for i := range rq.opts {
		o := &rq.opts[i]
		sh := s.shapes[o.shape]
		if sh == nil {
			sh = &shape{key: o.shape}
			s.shapes[o.shape] = sh
		}
		sh.refs++
		o.memo = sh
	}
}

// releaseShapes drops rq's references to its shapes, forgetting those no
// other internedRequest needs.
func (s *Scheduler) releaseShapes(rq *internedRequest) {
	for i := range rq.opts {
		if sh := rq.opts[i].memo; sh != nil {
			if sh.refs--; sh.refs == 0 {
				delete(s.shapes, sh.key)
			}
			rq.opts[i].memo = nil
		}
	}
}
