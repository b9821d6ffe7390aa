package console

import (
	"context"
	"maps"
	"sync"
	"time"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// Window is how far back the charts look.
const Window = time.Hour

// minGap is the least time between two samples taken on events: a burst of
// phase changes costs one read of the queue and the nodes, not one each.
const minGap = 5 * time.Second

// Sampler keeps the last hour of what the charts draw: runs that ended,
// per minute and final phase, counted from the dispatcher's events; and
// samples of the queue depth and of the GPUs in use per type, read from
// the dispatcher after phase changes (at most one per minGap) and when a
// chart is drawn. Between two samples nothing that they measure changed
// but by a phase change, so the charts draw them as steps. It runs no
// goroutine of its own: the dispatcher's subscriber loop calls it, and
// ends with the dispatcher.
//
// It follows the events of every process (Subscribe, not SubscribeLocal):
// where API and node agents are apart (PostgreSQL), the agents commit the
// outcomes. That costs each other process's change two reads of the
// store, so the sampler subscribes only once the console is first opened
// (Start), not for services whose console nobody looks at.
type Sampler struct {
	d     *dispatch.Dispatcher
	now   func() time.Time
	start sync.Once

	mu       sync.Mutex
	ended    map[int64]map[tasks.Phase]int // by Unix minute
	samples  []Sample                      // oldest first
	last     time.Time                     // of the last sample taken
	dirty    bool                          // a phase changed since
	sampling bool
}

// Sample is the queue and the GPUs at one time.
type Sample struct {
	At time.Time
	// Waiting counts runs queued or waiting for resources.
	Waiting int
	// GPUsInUse and GPUs count devices held by a run and all devices, by
	// kind ("A100", "A100-80GB MIG 1g.10gb").
	GPUsInUse, GPUs map[string]int
}

// NewSampler makes a sampler of d; it follows d's events from Start on.
// now nil means time.Now.
func NewSampler(d *dispatch.Dispatcher, now func() time.Time) *Sampler {
	if now == nil {
		now = time.Now
	}
	return &Sampler{d: d, now: now, ended: map[int64]map[tasks.Phase]int{}}
}

// Start follows d's events from now on; later calls do nothing.
func (s *Sampler) Start() { s.start.Do(func() { s.d.Subscribe(s.observe) }) }

// observe counts a run that ended and samples when due.
func (s *Sampler) observe(_ tasks.Run, ev tasks.Event) {
	s.mu.Lock()
	if ev.Phase.Terminal() {
		m := ev.At.Unix() / 60
		if s.ended[m] == nil {
			s.ended[m] = map[tasks.Phase]int{}
		}
		s.ended[m][ev.Phase]++
	}
	s.dirty = true
	due := s.now().Sub(s.last) >= minGap
	s.mu.Unlock()
	if due {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.sample(ctx)
	}
}

// Refresh takes a sample unless one was taken since the last phase change
// and less than a minute ago, so a chart drawn now ends at now.
func (s *Sampler) Refresh(ctx context.Context) {
	s.mu.Lock()
	fresh := !s.dirty && s.now().Sub(s.last) < time.Minute && len(s.samples) > 0
	s.mu.Unlock()
	if !fresh {
		s.sample(ctx)
	}
}

// sample reads the queue and the nodes. One sample at a time: a caller
// that finds one under way leaves it be.
func (s *Sampler) sample(ctx context.Context) {
	s.mu.Lock()
	if s.sampling {
		s.mu.Unlock()
		return
	}
	s.sampling, s.dirty = true, false
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.sampling = false
		s.mu.Unlock()
	}()
	q, err := s.d.Queue(ctx)
	if err != nil {
		s.markDirty()
		return
	}
	nodes, err := s.d.Nodes(ctx)
	if err != nil {
		s.markDirty()
		return
	}
	smp := Sample{
		At:        s.now(),
		Waiting:   q.Runs[tasks.PhaseQueued] + q.Runs[tasks.PhaseWaitingForResources],
		GPUsInUse: map[string]int{}, GPUs: map[string]int{},
	}
	for _, n := range nodes {
		if !n.Healthy {
			continue
		}
		for _, d := range n.Devices {
			k := Kind(d)
			smp.GPUs[k]++
			if d.Run != "" {
				smp.GPUsInUse[k]++
			}
		}
	}
	s.add(smp)
}

func (s *Sampler) markDirty() {
	s.mu.Lock()
	s.dirty = true
	s.mu.Unlock()
}

// add keeps smp and forgets what fell out of the window, but for the last
// sample before it, where the first step starts.
func (s *Sampler) add(smp Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.last = smp.At
	s.samples = append(s.samples, smp)
	from := smp.At.Add(-Window)
	i := 0
	for i+1 < len(s.samples) && !s.samples[i+1].At.After(from) {
		i++
	}
	s.samples = s.samples[i:]
	for m := range s.ended {
		if m < from.Unix()/60-1 {
			delete(s.ended, m)
		}
	}
}

// Kind names a device's kind as the charts group it.
func Kind(d dispatch.DeviceStatus) string {
	if d.MIG != "" {
		return d.Type + " MIG " + d.MIG
	}
	return d.Type
}

// Snapshot is a copy of what the sampler holds.
type Snapshot struct {
	Now time.Time
	// Ended counts runs that ended by Unix minute and final phase.
	Ended   map[int64]map[tasks.Phase]int
	Samples []Sample
}

// Snapshot copies what the sampler holds.
func (s *Sampler) Snapshot() Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	snap := Snapshot{Now: s.now(), Ended: make(map[int64]map[tasks.Phase]int, len(s.ended)), Samples: make([]Sample, len(s.samples))}
	for m, c := range s.ended {
		snap.Ended[m] = maps.Clone(c)
	}
	copy(snap.Samples, s.samples)
	return snap
}
