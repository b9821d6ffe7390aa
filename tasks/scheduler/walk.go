package scheduler

import "maps"

// A round need not walk the whole queue. Once every shape a waiting run
// needs has failed to fit in this round, and no waiting run can take a
// reservation any more, the rest of the queue can neither bind nor
// reserve: a full walk would only give each run the reason its shapes'
// memos already hold. The round stops there (stopAt), and those runs'
// reasons are worked out when asked (reasonOf). A backlog of a million
// runs then costs a round the runs it binds, not the million (issue 19).
//
// The counts below make the test O(1): per shape, how many waiting runs
// need it; per round, how many of the shapes waiting runs need have
// failed, and how many of those can never fit.

// countWaiting adds d (±1) to the waiting runs that need each of r's
// shapes, keeping the scheduler's counts of shapes in step.
func (s *Scheduler) countWaiting(r *runState, d int) {
	s.countProject(r.run.Project, d, 0)
	for i := range r.run.req.opts {
		sh := r.run.req.opts[i].memo
		before := sh.waiting > 0
		sh.waiting += d
		if after := sh.waiting > 0; after != before {
			delta := d
			s.waitingShapes += delta
			if sh.round == s.round && sh.fail != nil {
				s.failedShapes += delta
				if sh.fail.impossible {
					s.impossibleShapes += delta
				}
			}
		}
	}
}

// learnt records that sh failed in this round with f.
func (s *Scheduler) learnt(sh *shape, f *failure) {
	sh.fail, sh.round = f, s.round
	if sh.waiting > 0 {
		s.failedShapes++
		if f.impossible {
			s.impossibleShapes++
		}
	}
}

// hopeless reports whether no run left in the queue can bind or reserve
// in this round, with reservations left to make.
func (s *Scheduler) hopeless(reservations int) bool {
	if s.fullRounds || s.failedShapes < s.waitingShapes {
		return false
	}
	return reservations <= 0 || s.impossibleShapes == s.waitingShapes || len(s.reserved) >= s.indexedNodes
}

// stopped marks the runs from r on (in queue order) as not looked at by
// this round: cut is set when the round reached MaxBindingsPerRound, else
// they were hopeless.
func (s *Scheduler) stopped(r *runState, cut bool) {
	s.stopAt, s.stopCut = r, cut
	if !cut && len(s.cfg.ProjectGPUQuota) > 0 {
		// Their quota reasons are those of the round's end.
		s.stopGPUs = maps.Clone(s.projectGPUs)
	}
}

// reasonOf is why the last round left r waiting.
func (s *Scheduler) reasonOf(r *runState) string { return s.reasonOfMemo(r, 0) }

// reasonOfMemo is reasonOf; summary, when not zero, numbers a walk during
// which nothing changes, so a settled reason (what runs past the round's
// stop get), which depends only on the request and the project, is worked
// out once per pair and kept on the request.
func (s *Scheduler) reasonOfMemo(r *runState, summary uint64) string {
	if _, set := s.explicit[r]; !set && s.stopAt != nil && runCompare(r, s.stopAt) >= 0 {
		if s.stopCut {
			return reasonNextRound
		}
		if summary == 0 {
			return s.settledReason(r)
		}
		rq := r.run.req
		if rq.summary != summary {
			rq.summary, rq.settled = summary, rq.settled[:0]
		}
		for _, pr := range rq.settled {
			if pr.project == r.run.Project {
				return pr.reason
			}
		}
		reason := s.settledReason(r)
		rq.settled = append(rq.settled, projectReason{r.run.Project, reason})
		return reason
	}
	if r.reason == "" {
		return reasonNextRound
	}
	return r.reason
}

// settledReason is the reason decide would have given r after the round
// stopped: from its shapes' memos, as decide reads them.
func (s *Scheduler) settledReason(r *runState) string {
	reason := ""
	var missing []string
	for i := range r.run.req.opts {
		o := &r.run.req.opts[i]
		if s.overQuota(r, o, s.stopGPUs) {
			if reason == "" {
				reason = s.quotaText(s.cfg.ProjectGPUQuota[r.run.Project])
			}
			continue
		}
		if o.memo.round != s.round || o.memo.fail == nil {
			return reasonNextRound // a shape no round has tried yet
		}
		f := o.memo.fail
		if f.impossible {
			missing = append(missing, f.what)
			continue
		}
		if reason == "" {
			reason = f.reason
		}
	}
	if reason == "" {
		reason = noNodeHas(missing)
	}
	return reason
}
