package discovery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/taskgate/taskgate/tasks/scheduler"
)

func TestParseDeclaredGPUs(t *testing.T) {
	t.Parallel()
	devs, err := ParseDeclaredGPUs("A100:2, h100:3")
	if err != nil {
		t.Fatal(err)
	}
	want := []scheduler.Device{
		{Type: "A100-40GB", Index: 0, Parent: 0, Healthy: true},
		{Type: "A100-40GB", Index: 1, Parent: 1, Healthy: true},
		{Type: "H100", Index: 2, Parent: 2, Healthy: true},
		{Type: "H100", Index: 3, Parent: 3, Healthy: true},
		{Type: "H100", Index: 4, Parent: 4, Healthy: true},
	}
	if !reflect.DeepEqual(devs, want) {
		t.Fatalf("got %+v\nwant %+v", devs, want)
	}
	if devs, err := ParseDeclaredGPUs(" L4 ,A100-80GB:1"); err != nil || len(devs) != 2 || devs[0].Type != "L4" || devs[1].Type != "A100-80GB" {
		t.Fatalf("bare type: %+v %v", devs, err)
	}
	if devs, err := ParseDeclaredGPUs(""); err != nil || devs != nil {
		t.Fatalf("empty: %+v %v", devs, err)
	}
	for _, bad := range []string{"2", "A100:1g.10gb", "X100:1", "H100:9", "H100:0", "H100:4,,T4:1"} {
		if _, err := ParseDeclaredGPUs(bad); err == nil {
			t.Errorf("ParseDeclaredGPUs(%q) accepted", bad)
		}
	}
}

func readTestdata(t *testing.T, name string) string {
	t.Helper()
	if name == "" {
		return ""
	}
	b, err := os.ReadFile(filepath.Join("testdata", "nvidia-smi", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestParseNvidiaSMI(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		query, list string
		want        []scheduler.Device
	}{
		{
			name: "four A100 80GB", query: "a100x4.query.csv", list: "a100x4.list.txt",
			want: []scheduler.Device{
				{Type: "A100-80GB", Index: 0, Parent: 0, UUID: "GPU-4e6a2e3b-7d4f-4bb5-93e0-4bfa2b2a8b5a", MemoryBytes: 81920 << 20, Healthy: true},
				{Type: "A100-80GB", Index: 1, Parent: 1, UUID: "GPU-9c1d0f57-2b8e-4a4f-8d55-0f6f0e0b7c21", MemoryBytes: 81920 << 20, Healthy: true},
				{Type: "A100-80GB", Index: 2, Parent: 2, UUID: "GPU-1f0e9a33-6c2d-4b7a-a0f1-3a9b8c7d6e54", MemoryBytes: 81920 << 20, Healthy: true},
				{Type: "A100-80GB", Index: 3, Parent: 3, UUID: "GPU-77aa1c0e-5d3b-4e2f-9c8d-2b1a0f9e8d73", MemoryBytes: 81920 << 20, Healthy: true},
			},
		},
		{
			name: "H100 with MIG on GPU 0", query: "h100-mig.query.csv", list: "h100-mig.list.txt",
			want: []scheduler.Device{
				{Type: "H100", MIG: "3g.40gb", Index: 0, Parent: 0, UUID: "MIG-0c4d7c2e-5e2a-5d0f-9f1f-6f5c6b1e9a11", Healthy: true},
				{Type: "H100", MIG: "2g.20gb", Index: 1, Parent: 0, UUID: "MIG-1d5e8d3f-6f3b-5e1a-8a2b-7a6d7c2f0b22", Healthy: true},
				{Type: "H100", MIG: "1g.10gb", Index: 2, Parent: 0, UUID: "MIG-2e6f9e4a-7a4c-5f2b-9b3c-8b7e8d3a1c33", Healthy: true},
				{Type: "H100", MIG: "1g.10gb", Index: 3, Parent: 0, UUID: "MIG-3f7a0f5b-8b5d-5a3c-ac4d-9c8f9e4b2d44", Healthy: true},
				{Type: "H100", Index: 1, Parent: 1, UUID: "GPU-c4b2d3e5-2222-4b3c-9d4e-6f7a8b9c0d1e", MemoryBytes: 81559 << 20, Healthy: true},
			},
		},
		{
			name: "T4 without -L", query: "t4.query.csv",
			want: []scheduler.Device{{Type: "T4", Index: 0, Parent: 0, UUID: "GPU-8f2e1d0c-3b4a-5c6d-7e8f-9a0b1c2d3e4f", MemoryBytes: 15360 << 20, Healthy: true}},
		},
		{
			name: "old driver MIG lines, -L only", list: "a100-40gb-mig-old-driver.list.txt",
			want: []scheduler.Device{
				{Type: "A100-40GB", MIG: "1g.5gb", Index: 0, Parent: 0, UUID: "MIG-GPU-5a4b3c2d-1e0f-9a8b-7c6d-5e4f3a2b1c0d/7/0", Healthy: true},
				{Type: "A100-40GB", MIG: "1g.5gb", Index: 1, Parent: 0, UUID: "MIG-GPU-5a4b3c2d-1e0f-9a8b-7c6d-5e4f3a2b1c0d/8/0", Healthy: true},
			},
		},
		{name: "no devices", query: "no-devices.txt", list: "no-devices.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseNvidiaSMI(readTestdata(t, tt.query), readTestdata(t, tt.list))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseNvidiaSMIErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, query, list string
		msg               string
	}{
		{"driver", "driver-failure.txt", "", "couldn't communicate with the NVIDIA driver"},
		{"nvml", "nvml-mismatch.txt", "", "Driver/library version mismatch"},
		{"gpu lost", "gpu-lost.query.csv", "", "Unable to determine the device handle for GPU0000:3B:00.0"},
		{"garbled", "garbled.query.csv", "", "want index, name, uuid, memory.total"},
		{"driver in -L", "t4.query.csv", "driver-failure.txt", "NVIDIA-SMI has failed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseNvidiaSMI(readTestdata(t, tt.query), readTestdata(t, tt.list))
			if !errors.Is(err, ErrGPUDetection) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("error %v, want ErrGPUDetection with %q", err, tt.msg)
			}
		})
	}
	if _, err := ParseNvidiaSMI("", "GPU zero: who knows\n"); !errors.Is(err, ErrGPUDetection) {
		t.Fatalf("garbled -L: %v", err)
	}
}

// replay is a CommandRunner that plays recorded nvidia-smi outputs through a
// real process, so exit statuses and exec errors are the real ones.
func replay(t *testing.T, query, list string, code int) CommandRunner {
	return func(ctx context.Context, name string, args ...string) ([]byte, error) {
		if name != "nvidia-smi" {
			t.Fatalf("ran %s", name)
		}
		file := query
		if len(args) == 1 && args[0] == "-L" {
			file = list
		} else if !reflect.DeepEqual(args, QueryGPUArgs) {
			t.Fatalf("nvidia-smi %v", args)
		}
		path, _ := filepath.Abs(filepath.Join("testdata", "nvidia-smi", file))
		return ExecCommand(ctx, "sh", "-c", `cat "$1"; exit "$2"`, "sh", path, string(rune('0'+code)))
	}
}

func TestDetectGPUs(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("replays through sh")
	}
	ctx := context.Background()

	devs, err := DetectGPUs(ctx, replay(t, "h100-mig.query.csv", "h100-mig.list.txt", 0))
	if err != nil || len(devs) != 5 || devs[0].MIG != "3g.40gb" {
		t.Fatalf("MIG node: %+v %v", devs, err)
	}

	// nvidia-smi exits 6 with "No devices were found" on a machine without GPUs.
	devs, err = DetectGPUs(ctx, replay(t, "no-devices.txt", "no-devices.txt", 6))
	if err != nil || devs != nil {
		t.Fatalf("no devices: %+v %v", devs, err)
	}

	_, err = DetectGPUs(ctx, replay(t, "driver-failure.txt", "driver-failure.txt", 9))
	if !errors.Is(err, ErrGPUDetection) || !strings.Contains(err.Error(), "couldn't communicate") {
		t.Fatalf("driver failure: %v", err)
	}

	missing := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		return ExecCommand(ctx, "taskgate-no-such-nvidia-smi", args...)
	}
	devs, err = DetectGPUs(ctx, missing)
	if err != nil || devs != nil {
		t.Fatalf("missing nvidia-smi must mean no GPUs: %+v %v", devs, err)
	}

	crash := func(ctx context.Context, name string, args ...string) ([]byte, error) {
		return ExecCommand(ctx, "sh", "-c", "echo segfault >&2; exit 3")
	}
	if _, err := DetectGPUs(ctx, crash); !errors.Is(err, ErrGPUDetection) {
		t.Fatalf("crash: %v", err)
	}
}

func TestLocalNode(t *testing.T) {
	t.Parallel()
	gpus, _ := ParseDeclaredGPUs("T4:2")
	n := LocalNode("here", gpus)
	if n.ID != "here" || !n.Healthy || n.MilliCPU != int64(runtime.NumCPU())*1000 || len(n.Devices) != 2 {
		t.Fatalf("LocalNode %+v", n)
	}
	if runtime.GOOS == "linux" && n.MemoryBytes <= 0 {
		t.Fatalf("LocalNode memory %d on Linux", n.MemoryBytes)
	}
	gpus[0].Type = "changed"
	if n.Devices[0].Type != "T4" {
		t.Fatal("LocalNode shares the caller's slice")
	}
}

func TestParseMeminfo(t *testing.T) {
	t.Parallel()
	got, err := parseMeminfo(strings.NewReader("MemFree: 1 kB\nMemTotal:       16318440 kB\n"))
	if err != nil || got != 16318440<<10 {
		t.Fatalf("parseMeminfo = %d, %v", got, err)
	}
	for _, bad := range []string{"", "MemTotal: lots kB\n", "MemTotal: 12 MB\n"} {
		if _, err := parseMeminfo(strings.NewReader(bad)); err == nil {
			t.Errorf("parseMeminfo(%q) accepted", bad)
		}
	}
}

var _ CommandRunner = ExecCommand
