package dispatch

import (
	"context"
	"sync"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/store"
)

// listen fans the store's notifications out to the leader, the agent, the
// run watchers and (for other processes' changes) the subscribers: the
// store route of "Hand-offs" in doc.go, the only one between processes.
func (d *Dispatcher) listen(notes <-chan store.Notification) {
	for n := range notes {
		switch n.Kind {
		case store.NotifyEvent:
			d.watch.signal(n.Run)
			if !n.Local && d.subs.activeRemote() {
				d.subs.publishRemote(n)
			}
			if n.Delivery {
				d.deliveries.call()
			}
		case store.NotifyOverflow:
			d.watch.signalAll()
			d.deliveries.call() // some may have been enqueued
		}
		if d.leader != nil {
			d.leader.notify(n)
		}
		if d.agent != nil {
			d.agent.notify(n)
		}
	}
}

// Subscribe calls fn with every phase change, in commit order per run: the
// changes this process commits with the run as the change left it, and,
// where the store is shared (PostgreSQL), other processes' changes with the
// run as read just after. fn runs on one goroutine, behind a queue, so a
// slow fn delays other callbacks but never a commit. Each change of
// another process costs every process with a subscriber two reads of the
// store; SubscribeLocal and OnDelivery need none. The returned func
// unsubscribes.
func (d *Dispatcher) Subscribe(fn func(tasks.Run, tasks.Event)) (unsubscribe func()) {
	return d.subs.add(fn, false)
}

// SubscribeLocal is Subscribe for the changes this process commits only,
// which cost no read: where no subscriber wants other processes' changes,
// this process reads none of them.
func (d *Dispatcher) SubscribeLocal(fn func(tasks.Run, tasks.Event)) (unsubscribe func()) {
	return d.subs.add(fn, true)
}

// OnDelivery calls fn each time a change enqueues a webhook delivery: a
// change this process commits or, where the store is shared (PostgreSQL),
// another process's. Unlike Subscribe it reads nothing from the store, so
// a webhook worker in every API process can use it to look at the outbox
// at once. fn runs on the goroutine that fans out the store's
// notifications and must not block (wake a worker). The returned func
// unsubscribes.
func (d *Dispatcher) OnDelivery(fn func()) (unsubscribe func()) {
	return d.deliveries.add(fn)
}

// readEvent fetches the run and event of another process's notification.
func (d *Dispatcher) readEvent(n store.Notification) (tasks.Run, tasks.Event, bool) {
	ctx := d.bg
	sr, err := d.st.GetRun(ctx, n.Run)
	if err != nil {
		return tasks.Run{}, tasks.Event{}, false
	}
	evs, err := d.st.Events(ctx, n.Run, n.Seq-1)
	if err != nil || len(evs) == 0 {
		return tasks.Run{}, tasks.Event{}, false
	}
	return sr.Run, evs[0], true
}

// publishLocal tells subscribers about a change committed by this process.
func (d *Dispatcher) publishLocal(run tasks.Run, ev tasks.Event) {
	if !d.subs.active() {
		return
	}
	d.subs.publish(run, ev)
}

// subscribers queues phase changes for the Subscribe callbacks, which run
// on one goroutine so that a slow callback never stalls a commit.
type subscribers struct {
	mu     sync.Mutex
	fns    map[int]subscriber
	nextID int
	// n and remote count the subscribers, and those that want other
	// processes' changes (each costs two reads of the store).
	n, remote int
	queue     []subItem
	wake      chan struct{}
	// read fetches the run of a remote notification.
	read func(n store.Notification) (tasks.Run, tasks.Event, bool)
}

type subscriber struct {
	fn    func(tasks.Run, tasks.Event)
	local bool // this process's changes only
}

type subItem struct {
	run    tasks.Run
	ev     tasks.Event
	remote *store.Notification
}

func (s *subscribers) init() {
	s.fns = map[int]subscriber{}
	s.wake = make(chan struct{}, 1)
}

// active reports whether anyone wants this process's changes.
func (s *subscribers) active() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n > 0
}

// activeRemote reports whether anyone wants other processes' changes.
func (s *subscribers) activeRemote() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.remote > 0
}

func (s *subscribers) add(fn func(tasks.Run, tasks.Event), local bool) func() {
	s.mu.Lock()
	defer s.mu.Unlock()
	id := s.nextID
	s.nextID++
	s.fns[id] = subscriber{fn: fn, local: local}
	s.count()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.fns, id)
			s.count()
			s.mu.Unlock()
		})
	}
}

// count updates n and remote. s.mu is held.
func (s *subscribers) count() {
	s.n, s.remote = len(s.fns), 0
	for _, sub := range s.fns {
		if !sub.local {
			s.remote++
		}
	}
}

func (s *subscribers) publish(run tasks.Run, ev tasks.Event) {
	s.push(subItem{run: run, ev: ev})
}

func (s *subscribers) publishRemote(n store.Notification) {
	s.push(subItem{remote: &n})
}

func (s *subscribers) push(it subItem) {
	s.mu.Lock()
	s.queue = append(s.queue, it)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// run delivers queued changes until ctx is done.
func (s *subscribers) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		}
		for {
			s.mu.Lock()
			items := s.queue
			s.queue = nil
			subs := make([]subscriber, 0, len(s.fns))
			for _, sub := range s.fns {
				subs = append(subs, sub)
			}
			s.mu.Unlock()
			if len(items) == 0 {
				break
			}
			for _, it := range items {
				if it.remote != nil {
					var ok bool
					if it.run, it.ev, ok = s.read(*it.remote); !ok {
						continue
					}
				}
				for _, sub := range subs {
					if it.remote == nil || !sub.local {
						sub.fn(it.run, it.ev)
					}
				}
			}
		}
	}
}

// hooks are the OnDelivery callbacks.
type hooks struct {
	mu     sync.Mutex
	fns    map[int]func()
	nextID int
}

func (h *hooks) add(fn func()) func() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fns == nil {
		h.fns = map[int]func(){}
	}
	id := h.nextID
	h.nextID++
	h.fns[id] = fn
	return func() {
		h.mu.Lock()
		delete(h.fns, id)
		h.mu.Unlock()
	}
}

// call runs every hook, outside the lock: a hook may unsubscribe.
func (h *hooks) call() {
	h.mu.Lock()
	fns := make([]func(), 0, len(h.fns))
	for _, fn := range h.fns {
		fns = append(fns, fn)
	}
	h.mu.Unlock()
	for _, fn := range fns {
		fn()
	}
}
