package tasks

import (
	"testing"
)

func TestAcceleratorFromProductName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		product string
		want    string
		ok      bool
	}{
		{"NVIDIA A100-SXM4-80GB", "A100-80GB", true},
		{"NVIDIA A100-SXM4-40GB", "A100-40GB", true},
		{"NVIDIA A100-PCIE-40GB", "A100-40GB", true},
		{"NVIDIA A100 80GB PCIe", "A100-80GB", true},
		{"NVIDIA H100 80GB HBM3", "H100", true},
		{"NVIDIA H100 PCIe", "H100", true},
		{"NVIDIA H100 NVL", "H100", true},
		{"NVIDIA H200", "H200", true},
		{"NVIDIA H200 NVL", "H200", true},
		{"NVIDIA B200", "B200", true},
		{"Tesla T4", "T4", true},
		{"NVIDIA L4", "L4", true},
		{"NVIDIA L40S", "L40S", true},
		{"NVIDIA A10", "A10", true},
		{"NVIDIA A10G", "A10G", true},
		{"Tesla V100-SXM2-16GB", "V100", true},
		{"Tesla V100S-PCIE-32GB", "V100", true},
		{"NVIDIA RTX PRO 6000 Blackwell Server Edition", "RTX-PRO-6000", true},
		{"NVIDIA L40", "", false},
		{"NVIDIA GeForce RTX 4090", "", false},
		{"", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.product, func(t *testing.T) {
			t.Parallel()
			got, ok := AcceleratorFromProductName(tt.product)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("AcceleratorFromProductName(%q) = %q, %v; want %q, %v", tt.product, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestCatalogue(t *testing.T) {
	t.Parallel()
	required := []string{"T4", "L4", "L40S", "A10", "A10G", "A100-40GB", "A100-80GB", "A100", "H100", "H200", "B200", "V100", "RTX-PRO-6000"}
	for _, name := range required {
		a, ok := LookupAccelerator(name)
		if !ok || a.Name != name {
			t.Errorf("LookupAccelerator(%q) = %q, %v", name, a.Name, ok)
			continue
		}
		if a.MaxCount < 1 || a.MaxCount > 16 || a.MemoryBytes <= 0 {
			t.Errorf("%s: MaxCount %d, MemoryBytes %d out of sane range", name, a.MaxCount, a.MemoryBytes)
		}
		for _, p := range a.MIGProfiles {
			if !migRE.MatchString(p) {
				t.Errorf("%s: MIG profile %q has the wrong shape", name, p)
			}
		}
	}
	if got := len(Accelerators()); got != len(required) {
		t.Errorf("Accelerators() has %d entries, want %d", got, len(required))
	}
	// Accelerators hands out copies.
	Accelerators()[0].Aliases = append(Accelerators()[0].Aliases, "x")
	all := Accelerators()
	all[5].MIGProfiles[0] = "broken"
	if a, _ := LookupAccelerator("A100-40GB"); a.MIGProfiles[0] != "1g.5gb" {
		t.Errorf("Accelerators() leaked the catalogue: %v", a.MIGProfiles)
	}
	for _, alias := range []string{"a100-40g", "A100_80GB", "rtx pro 6000", "RTXPRO6000", " h100 "} {
		if _, ok := LookupAccelerator(alias); !ok {
			t.Errorf("LookupAccelerator(%q) not found", alias)
		}
	}
	fam, _ := LookupAccelerator("A100")
	for _, m := range fam.Members {
		member, _ := LookupAccelerator(m)
		for _, p := range member.MIGProfiles {
			if !fam.HasMIG(p) {
				t.Errorf("family A100 misses %s's profile %s", m, p)
			}
		}
	}
}
