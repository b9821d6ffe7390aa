package store

import "github.com/taskgate/taskgate/middleware/identity"

// Caller is the part of a verified identity kept with a run, so that a
// restarted process still knows who submitted it. Raw credentials never
// reach the store.
type Caller struct {
	Subject string   `json:"subject"`
	Name    string   `json:"name,omitempty"`
	Email   string   `json:"email,omitempty"`
	Groups  []string `json:"groups,omitempty"`
}

// CallerOf is the part of id kept with a run: the token's claims and expiry
// stay behind, so a run started in this process and one read back after a
// restart see the same caller.
func CallerOf(id identity.Identity) Caller {
	return Caller{Subject: id.Subject, Name: id.Name, Email: id.Email, Groups: id.Groups}
}

// Identity is the caller as the task function sees it (tasks.RunInfo).
func (c Caller) Identity() identity.Identity {
	return identity.Identity{Subject: c.Subject, Name: c.Name, Email: c.Email, Groups: c.Groups}
}
