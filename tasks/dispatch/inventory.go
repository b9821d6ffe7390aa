package dispatch

import (
	"encoding/json"
	"strconv"

	"github.com/taskgate/taskgate/tasks/scheduler"
)

// inventory is a node's resources as its agent stores them
// (store.Node.Inventory) and as the leader and Nodes read them back. Several
// processes, perhaps of different versions, share it through one database,
// so it changes only in ways older readers accept; scheduler.Node, the
// engine's input, may change freely. encodeInventory and decodeInventory are
// its one conversion.
type inventory struct {
	ID          string            `json:"id"`
	Labels      map[string]string `json:"labels,omitempty"`
	MilliCPU    int64             `json:"milli_cpu"`
	MemoryBytes int64             `json:"memory_bytes"`
	Devices     []inventoryDevice `json:"devices,omitempty"`
	Healthy     bool              `json:"healthy"`
}

// inventoryDevice is one device of a stored inventory; see scheduler.Device
// for what the fields mean.
type inventoryDevice struct {
	Type        string `json:"type"`
	Index       int    `json:"index"`
	UUID        string `json:"uuid,omitempty"`
	MIG         string `json:"mig,omitempty"`
	Parent      int    `json:"parent"`
	MemoryBytes int64  `json:"memory_bytes,omitempty"`
	Healthy     bool   `json:"healthy"`
}

func encodeInventory(n scheduler.Node) (json.RawMessage, error) {
	inv := inventory{ID: n.ID, Labels: n.Labels, MilliCPU: n.MilliCPU, MemoryBytes: n.MemoryBytes, Healthy: n.Healthy}
	for _, d := range n.Devices {
		inv.Devices = append(inv.Devices, inventoryDevice{
			Type: d.Type, Index: d.Index, UUID: d.UUID, MIG: d.MIG, Parent: d.Parent, MemoryBytes: d.MemoryBytes, Healthy: d.Healthy,
		})
	}
	return json.Marshal(inv)
}

func decodeInventory(raw json.RawMessage) (scheduler.Node, error) {
	var inv inventory
	if err := json.Unmarshal(raw, &inv); err != nil {
		return scheduler.Node{}, err
	}
	n := scheduler.Node{ID: inv.ID, Labels: inv.Labels, MilliCPU: inv.MilliCPU, MemoryBytes: inv.MemoryBytes, Healthy: inv.Healthy}
	for _, d := range inv.Devices {
		n.Devices = append(n.Devices, scheduler.Device{
			Type: d.Type, Index: d.Index, UUID: d.UUID, MIG: d.MIG, Parent: d.Parent, MemoryBytes: d.MemoryBytes, Healthy: d.Healthy,
		})
	}
	return n, nil
}

// deviceRef names a device in a run's record: its UUID when known, else
// its index, or parent:index for a MIG partition.
func deviceRef(d scheduler.Device) string {
	switch {
	case d.UUID != "":
		return d.UUID
	case d.MIG != "":
		return strconv.Itoa(d.Parent) + ":" + strconv.Itoa(d.Index)
	}
	return strconv.Itoa(d.Index)
}
