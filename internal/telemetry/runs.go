package telemetry

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/callback"
	"github.com/taskgate/taskgate/tasks/dispatch"
)

// runBuckets cover a run's wait and life: an idle node starts a run in
// milliseconds; a training run lasts hours.
var runBuckets = []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600}

// commitBuckets cover one group commit: a page write to a slow fsync.
var commitBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 5}

// batchBuckets cover a group commit's size, up to the writers' caps.
var batchBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// Runs are the metrics of runs, attempts, placement rounds, store commits
// and webhook deliveries: the dispatch.Observer and callback.Observer that
// framework gives the dispatcher and the delivery worker. Labels are task
// IDs (bounded by the registry), phases, outcomes and writer names; never
// a run's name.
type Runs struct {
	submitted *prometheus.CounterVec
	finished  *prometheus.CounterVec
	attempts  *prometheus.CounterVec
	queued    *prometheus.HistogramVec
	duration  *prometheus.HistogramVec

	rounds    prometheus.Histogram
	placed    prometheus.Counter
	commits   *prometheus.HistogramVec
	batches   *prometheus.HistogramVec
	delivered *prometheus.CounterVec
	deliverD  prometheus.Histogram
}

var (
	_ dispatch.Observer = (*Runs)(nil)
	_ callback.Observer = (*Runs)(nil)
)

// NewRuns registers the run metrics on reg (sharing those of the same
// names already there).
func NewRuns(reg prometheus.Registerer) (*Runs, error) {
	m := &Runs{
		submitted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskgate_runs_submitted_total",
			Help: "Runs submitted (idempotent repeats not counted), by task.",
		}, []string{"task"}),
		finished: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskgate_runs_finished_total",
			Help: "Runs that reached a terminal phase, by task and phase.",
		}, []string{"task", "phase"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskgate_attempts_total",
			Help: "Attempts ended, by task and outcome (succeeded, failed, retried, interrupted, aborted).",
		}, []string{"task", "outcome"}),
		queued: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskgate_run_queued_seconds",
			Help:    "Time from a run's submit to its first attempt running, by task.",
			Buckets: runBuckets,
		}, []string{"task"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskgate_run_duration_seconds",
			Help:    "Time from a run's submit to its end, by task.",
			Buckets: runBuckets,
		}, []string{"task"}),
		rounds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "taskgate_scheduler_round_duration_seconds",
			Help:    "Scheduling rounds of the leader and their time, the commit of their bindings included.",
			Buckets: commitBuckets,
		}),
		placed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "taskgate_scheduler_placements_total",
			Help: "Runs bound to a node by the scheduling rounds of this process.",
		}),
		commits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskgate_store_commit_duration_seconds",
			Help:    "Time of one store transaction, by writer (submit, transitions, outbox).",
			Buckets: commitBuckets,
		}, []string{"writer"}),
		batches: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "taskgate_store_commit_batch_size",
			Help:    "Changes in one store transaction (group commit), by writer (submit, transitions, outbox).",
			Buckets: batchBuckets,
		}, []string{"writer"}),
		delivered: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "taskgate_webhook_deliveries_total",
			Help: "Webhook delivery attempts, by outcome (delivered, retried, failed).",
		}, []string{"outcome"}),
		deliverD: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "taskgate_webhook_delivery_duration_seconds",
			Help:    "Time of one webhook POST.",
			Buckets: durationBuckets,
		}),
	}
	var err error
	reg1 := func(c prometheus.Collector) prometheus.Collector {
		if err != nil {
			return c
		}
		var got prometheus.Collector
		got, err = register(reg, c)
		return got
	}
	m.submitted = reg1(m.submitted).(*prometheus.CounterVec)
	m.finished = reg1(m.finished).(*prometheus.CounterVec)
	m.attempts = reg1(m.attempts).(*prometheus.CounterVec)
	m.queued = reg1(m.queued).(*prometheus.HistogramVec)
	m.duration = reg1(m.duration).(*prometheus.HistogramVec)
	m.rounds = reg1(m.rounds).(prometheus.Histogram)
	m.placed = reg1(m.placed).(prometheus.Counter)
	m.commits = reg1(m.commits).(*prometheus.HistogramVec)
	m.batches = reg1(m.batches).(*prometheus.HistogramVec)
	m.delivered = reg1(m.delivered).(*prometheus.CounterVec)
	m.deliverD = reg1(m.deliverD).(prometheus.Histogram)
	if err != nil {
		return nil, err
	}
	return m, nil
}

func (m *Runs) RunSubmitted(task string) { m.submitted.WithLabelValues(task).Inc() }

func (m *Runs) RunStarted(task string, queued time.Duration) {
	m.queued.WithLabelValues(task).Observe(queued.Seconds())
}

func (m *Runs) AttemptEnded(task string, o dispatch.AttemptOutcome) {
	m.attempts.WithLabelValues(task, string(o)).Inc()
}

func (m *Runs) RunFinished(task string, phase tasks.Phase, d time.Duration) {
	m.finished.WithLabelValues(task, string(phase)).Inc()
	m.duration.WithLabelValues(task).Observe(d.Seconds())
}

func (m *Runs) Placed(d time.Duration, n int) {
	m.rounds.Observe(d.Seconds())
	m.placed.Add(float64(n))
}

func (m *Runs) Committed(writer string, n int, d time.Duration) {
	m.commits.WithLabelValues(writer).Observe(d.Seconds())
	m.batches.WithLabelValues(writer).Observe(float64(n))
}

func (m *Runs) Delivered(outcome string, d time.Duration) {
	m.delivered.WithLabelValues(outcome).Inc()
	m.deliverD.Observe(d.Seconds())
}
