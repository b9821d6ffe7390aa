package discovery

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/taskgate/taskgate/tasks/scheduler"
)

// FuzzParseNvidiaSMI feeds arbitrary text as both nvidia-smi outputs: the
// parser must never panic, must fail only with ErrGPUDetection, and every
// device it returns must be usable as scheduler input.
func FuzzParseNvidiaSMI(f *testing.F) {
	pairs := [][2]string{
		{"a100x4.query.csv", "a100x4.list.txt"},
		{"h100-mig.query.csv", "h100-mig.list.txt"},
		{"t4.query.csv", "t4.list.txt"},
		{"", "a100-40gb-mig-old-driver.list.txt"},
		{"driver-failure.txt", ""},
		{"gpu-lost.query.csv", ""},
		{"garbled.query.csv", "no-devices.txt"},
	}
	for _, p := range pairs {
		var texts [2]string
		for i, name := range p {
			if name == "" {
				continue
			}
			b, err := os.ReadFile(filepath.Join("testdata", "nvidia-smi", name))
			if err != nil {
				f.Fatal(err)
			}
			texts[i] = string(b)
		}
		f.Add(texts[0], texts[1])
	}
	f.Fuzz(func(t *testing.T, query, list string) {
		devs, err := ParseNvidiaSMI(query, list)
		if err != nil {
			if !errors.Is(err, ErrGPUDetection) {
				t.Fatalf("error %v is not ErrGPUDetection", err)
			}
			return
		}
		for _, d := range devs {
			if d.Index < 0 || d.Parent < 0 || (d.MIG == "" && d.Parent != d.Index) {
				t.Fatalf("device %+v has inconsistent indexes", d)
			}
		}
		// The inventory must be acceptable to the scheduler unless the
		// text itself lists a device twice or without a name.
		s, err := scheduler.New(scheduler.Config{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.UpsertNode(scheduler.Node{ID: "n", Devices: devs}); err != nil && !errors.Is(err, scheduler.ErrInvalidNode) {
			t.Fatal(err)
		}
	})
}

// FuzzParseDeclaredGPUs: never panic; accepted specs give whole, healthy,
// consecutively numbered devices.
func FuzzParseDeclaredGPUs(f *testing.F) {
	for _, s := range []string{"A100:4,H100:8", "L4", "h100:8, a100-80gb:2", "2", "A100:1g.10gb", ",", "H100:9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, spec string) {
		devs, err := ParseDeclaredGPUs(spec)
		if err != nil {
			return
		}
		for i, d := range devs {
			if d.Index != i || d.Parent != i || d.MIG != "" || !d.Healthy || d.Type == "" {
				t.Fatalf("device %d: %+v", i, d)
			}
		}
	})
}
