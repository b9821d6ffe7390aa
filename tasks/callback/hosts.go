package callback

import (
	"net/url"
	"strings"
	"time"

	"github.com/taskgate/taskgate/tasks/store"
)

// hosts is the worker loop's account of its callbacks per receiver (a
// URL's host and port): how many are in flight, which claimed ones wait
// for a slot, and when the next one it gives back should be due. Only the
// loop uses it, so it has no lock.
//
// Each receiver may have perHost callbacks in flight and some more
// claimed and waiting (hold); the worker as a whole concurrency in
// flight. A
// claimed delivery whose receiver has no room left is postponed: given
// back to the outbox, due when the receiver should have worked through
// what it has, so that a slow receiver's backlog waits in the store, not
// in the slots of the others. Postponements are spread at the receiver's
// pace (its attempts' mean time over perHost), so each delivery of a
// backlog is postponed about once rather than at every claim.
type hosts struct {
	perHost, concurrency int
	byName               map[string]*host
	// inflight and held count over every receiver.
	inflight, held int
}

type host struct {
	inflight int
	held     []store.Delivery
	// pace is the mean time of the receiver's recent attempts (an
	// exponential moving average); zero before the first ended.
	pace time.Duration
	// horizon is when the last delivery postponed for it is due.
	horizon time.Time
	// seen is when the worker last claimed or finished one of its
	// deliveries: hosts idle for forgetAfter are dropped.
	seen time.Time
}

const (
	// initialPace stands for a receiver's attempt time before one ended.
	initialPace = time.Second
	// holdWait is how long a claimed delivery may wait for a slot of its
	// receiver, at the receiver's pace: a fast receiver may have many
	// waiting, so that one claim (one transaction) feeds it for a while.
	holdWait = time.Second
	// maxHeld bounds the claimed deliveries waiting in the worker, over
	// every receiver, and so the size of a claim.
	maxHeld = 1024
	// maxPostpone bounds how far ahead a delivery is postponed: a
	// receiver that recovers waits at most this long for its backlog.
	maxPostpone = 5 * time.Minute
	// forgetAfter is how long an idle receiver is remembered.
	forgetAfter = time.Minute
)

func newHosts(perHost, concurrency int) *hosts {
	return &hosts{perHost: perHost, concurrency: concurrency, byName: map[string]*host{}}
}

// hostKey names a callback URL's receiver: its host and port.
func hostKey(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return strings.ToLower(u.Host)
}

// budget is how many deliveries the next claim may take: the room the
// known receivers have left (perHost in flight plus hold waiting each),
// plus, when probe, one receiver's worth for receivers not seen yet,
// within the worker's own room (concurrency in flight plus as many
// waiting, or maxHeld if more). Claiming more than the known receivers
// can take would only postpone deliveries of a busy one at every claim.
func (hs *hosts) budget(probe bool) int {
	room := 0
	for _, h := range hs.byName {
		room += max(0, hs.perHost+hs.hold(h)-h.inflight-len(h.held))
	}
	if probe || len(hs.byName) == 0 {
		room += hs.perHost
	}
	return min(room, hs.concurrency+max(hs.concurrency, maxHeld)-hs.inflight-hs.held)
}

// hold is how many claimed deliveries may wait for h's slots: as many as
// it works through in holdWait at its pace, so that a fast receiver is fed
// by claims of many at a time, each a transaction, and at least 2*perHost
// (two rounds of its attempts, the bound for a slow or new receiver),
// within maxHeld.
func (hs *hosts) hold(h *host) int {
	n := 2 * hs.perHost
	if h.pace > 0 {
		n = max(n, min(maxHeld, int(int64(hs.perHost)*int64(holdWait)/int64(h.pace))))
	}
	return n
}

// get returns the receiver named name, known from now on.
func (hs *hosts) get(name string, now time.Time) *host {
	h := hs.byName[name]
	if h == nil {
		h = &host{}
		hs.byName[name] = h
	}
	h.seen = now
	return h
}

// admit places a claimed delivery: it starts now (true), waits for a
// slot of its receiver (held), or, when its receiver has no room, is to
// be postponed until the time returned.
func (hs *hosts) admit(dl store.Delivery, now time.Time, unbounded bool) (start bool, postpone time.Time) {
	name := hostKey(dl.URL)
	h := hs.get(name, now)
	if h.inflight < hs.perHost && hs.inflight < hs.concurrency && len(h.held) == 0 {
		h.inflight++
		hs.inflight++
		return true, time.Time{}
	}
	if len(h.held) < hs.hold(h) || unbounded {
		h.held = append(h.held, dl)
		hs.held++
		return false, time.Time{}
	}
	pace := h.pace
	if pace == 0 {
		pace = initialPace
	}
	step := pace / time.Duration(hs.perHost)
	// Behind what is in flight and waiting here, then behind the
	// deliveries postponed before.
	ahead := now.Add(time.Duration(h.inflight+len(h.held)) * step)
	if h.horizon.Before(ahead) {
		h.horizon = ahead
	}
	h.horizon = h.horizon.Add(step)
	if limit := now.Add(maxPostpone); h.horizon.After(limit) {
		h.horizon = limit
	}
	return false, h.horizon
}

// finished counts the end of an attempt to name that took d.
func (hs *hosts) finished(name string, d time.Duration, now time.Time) {
	h := hs.get(name, now)
	h.inflight--
	hs.inflight--
	if h.pace == 0 {
		h.pace = d
	} else {
		h.pace += (d - h.pace) / 8
	}
}

// next returns a waiting delivery that may start now, counted as in
// flight: first one of name (whose attempt just ended), else any.
func (hs *hosts) next(name string) (store.Delivery, bool) {
	if hs.inflight >= hs.concurrency || hs.held == 0 {
		return store.Delivery{}, false
	}
	if h := hs.byName[name]; h != nil && len(h.held) > 0 && h.inflight < hs.perHost {
		return hs.take(h), true
	}
	for _, h := range hs.byName {
		if len(h.held) > 0 && h.inflight < hs.perHost {
			return hs.take(h), true
		}
	}
	return store.Delivery{}, false
}

func (hs *hosts) take(h *host) store.Delivery {
	dl := h.held[0]
	h.held[0] = store.Delivery{}
	h.held = h.held[1:]
	hs.held--
	h.inflight++
	hs.inflight++
	return dl
}

// drop gives up every waiting delivery (the worker stops) and returns
// them.
func (hs *hosts) drop() []store.Delivery {
	var out []store.Delivery
	for _, h := range hs.byName {
		out = append(out, h.held...)
		h.held = nil
	}
	hs.held = 0
	return out
}

// forget drops the receivers idle since before now-forgetAfter whose
// postponed deliveries are due: the map stays as small as the set of
// receivers in use.
func (hs *hosts) forget(now time.Time) {
	for name, h := range hs.byName {
		if h.inflight == 0 && len(h.held) == 0 && now.Sub(h.seen) > forgetAfter && now.After(h.horizon) {
			delete(hs.byName, name)
		}
	}
}
