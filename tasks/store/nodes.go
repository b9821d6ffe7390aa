package store

import (
	"encoding/json"
	"time"
)

// Node is a node agent's registration.
type Node struct {
	ID string
	// Inventory is the node's resources as the dispatcher encodes them.
	Inventory json.RawMessage
	// Heartbeat is the last time the node reported alive.
	Heartbeat time.Time
	// StartedAt is when the node agent registered.
	StartedAt time.Time
}
