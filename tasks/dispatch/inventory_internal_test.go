package dispatch

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/taskgate/taskgate/tasks/scheduler"
)

// The stored inventory and the GET /nodes device are formats of their own:
// these are the bytes that json.Marshal(scheduler.Node) and the device
// embedded in DeviceStatus gave before they had their own types, so rows
// written by older processes still read, and older processes read ours.
const (
	storedGPUNode = `{"id":"gpu-1","labels":{"zone":"a"},"milli_cpu":64000,"memory_bytes":549755813888,` +
		`"devices":[{"type":"H100","index":0,"uuid":"MIG-0c4d","mig":"3g.40gb","parent":0,"healthy":true},` +
		`{"type":"A100-40GB","index":1,"parent":1,"memory_bytes":42949672960,"healthy":false}],"healthy":true}`
	storedCPUNode = `{"id":"cpu","milli_cpu":2000,"memory_bytes":0,"healthy":false}`
)

var gpuNode = scheduler.Node{
	ID: "gpu-1", Labels: map[string]string{"zone": "a"}, MilliCPU: 64000, MemoryBytes: 512 << 30, Healthy: true,
	Devices: []scheduler.Device{
		{Type: "H100", MIG: "3g.40gb", Index: 0, Parent: 0, UUID: "MIG-0c4d", Healthy: true},
		{Type: "A100-40GB", Index: 1, Parent: 1, MemoryBytes: 40 << 30, Healthy: false},
	},
}

func TestStoredInventoryFormat(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		node   scheduler.Node
		stored string
	}{
		{gpuNode, storedGPUNode},
		{scheduler.Node{ID: "cpu", MilliCPU: 2000}, storedCPUNode},
	} {
		raw, err := encodeInventory(tt.node)
		require.NoError(t, err)
		require.JSONEq(t, tt.stored, string(raw))
		require.Equal(t, tt.stored, string(raw), "field order too, so the bytes stay comparable")

		got, err := decodeInventory(json.RawMessage(tt.stored))
		require.NoError(t, err)
		require.Equal(t, tt.node, got, "nil labels and devices stay nil")
	}
	_, err := decodeInventory(json.RawMessage(`{"id":`))
	require.Error(t, err)
}

func TestDeviceStatusFormat(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(deviceStatus(gpuNode.Devices[0], "r1"))
	require.NoError(t, err)
	require.Equal(t, `{"type":"H100","index":0,"uuid":"MIG-0c4d","mig":"3g.40gb","parent":0,"healthy":true,"run":"r1"}`, string(b))
	b, err = json.Marshal(deviceStatus(gpuNode.Devices[1], ""))
	require.NoError(t, err)
	require.Equal(t, `{"type":"A100-40GB","index":1,"parent":1,"memory_bytes":42949672960,"healthy":false}`, string(b))
}
