package tasks

// Phase is where a run is in its lifecycle. The names are Flyte's.
type Phase string

// The phases of a run, in lifecycle order. A run moves forward only; a retry
// moves it from running back to queued as a new attempt.
const (
	PhaseQueued              Phase = "queued"
	PhaseWaitingForResources Phase = "waiting_for_resources"
	PhaseInitializing        Phase = "initializing"
	PhaseRunning             Phase = "running"
	PhaseSucceeded           Phase = "succeeded"
	PhaseFailed              Phase = "failed"
	PhaseAborted             Phase = "aborted"
	PhaseTimedOut            Phase = "timed_out"
)

// Phases lists every phase in lifecycle order.
var Phases = []Phase{
	PhaseQueued, PhaseWaitingForResources, PhaseInitializing, PhaseRunning,
	PhaseSucceeded, PhaseFailed, PhaseAborted, PhaseTimedOut,
}

// Terminal reports whether no further change can happen to a run in p.
func (p Phase) Terminal() bool {
	switch p {
	case PhaseSucceeded, PhaseFailed, PhaseAborted, PhaseTimedOut:
		return true
	}
	return false
}

// Valid reports whether p is one of the known phases.
func (p Phase) Valid() bool {
	for _, q := range Phases {
		if p == q {
			return true
		}
	}
	return false
}
