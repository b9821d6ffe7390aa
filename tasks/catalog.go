package tasks

import (
	"slices"
	"strings"
)

// Accelerator describes one kind of GPU the scheduler knows. The catalogue is
// what turns a typo in a resource spec ("H10:8") into a definition-time error
// instead of a run that waits forever.
type Accelerator struct {
	// Name is the canonical catalogue name ("A100-80GB"), the form used in
	// specs, node inventories and scheduler reasons.
	Name string `json:"name"`
	// Members lists the concrete models a family stands for ("A100" is
	// A100-40GB or A100-80GB). Empty for a concrete model.
	Members []string `json:"members,omitempty"`
	// MemoryBytes is the nominal memory of one device (for a family, of its
	// smallest member).
	MemoryBytes int64 `json:"memory_bytes"`
	// MaxCount is the most devices of this type one run may ask for: the
	// largest single machine commonly sold or rented with them, so a gang
	// request above it could never be placed.
	MaxCount int `json:"max_count"`
	// MIGProfiles are the valid Multi-Instance GPU partitions, smallest
	// first; empty when the model has no MIG.
	MIGProfiles []string `json:"mig_profiles,omitempty"`
	// Aliases are other spellings accepted in specs (matched
	// case-insensitively, with spaces and underscores read as dashes).
	Aliases []string `json:"aliases,omitempty"`
}

// IsFamily reports whether a names several concrete models.
func (a Accelerator) IsFamily() bool { return len(a.Members) > 0 }

// HasMIG reports whether profile (e.g. "1g.10gb") is a valid MIG partition of a.
func (a Accelerator) HasMIG(profile string) bool {
	return slices.Contains(a.MIGProfiles, strings.ToLower(profile))
}

const gib = int64(1) << 30

// Counts: 8 per machine is the common ceiling (DGX/HGX boards, AWS p4/p5/g5/g6,
// GCP a3/g2). The exceptions are A100-40GB, sold 16 to a machine in GCP's
// a2-megagpu-16g, and A10, which no mainstream server carries more than 4 of.
var catalogue = []Accelerator{
	{Name: "T4", MemoryBytes: 16 * gib, MaxCount: 8},
	{Name: "L4", MemoryBytes: 24 * gib, MaxCount: 8},
	{Name: "L40S", MemoryBytes: 48 * gib, MaxCount: 8},
	{Name: "A10", MemoryBytes: 24 * gib, MaxCount: 4},
	{Name: "A10G", MemoryBytes: 24 * gib, MaxCount: 8},
	{
		Name: "A100-40GB", MemoryBytes: 40 * gib, MaxCount: 16,
		MIGProfiles: []string{"1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"},
		Aliases:     []string{"A100-40G", "A100-40"},
	},
	{
		Name: "A100-80GB", MemoryBytes: 80 * gib, MaxCount: 8,
		MIGProfiles: []string{"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"},
		Aliases:     []string{"A100-80G", "A100-80"},
	},
	{
		Name: "A100", Members: []string{"A100-40GB", "A100-80GB"},
		MemoryBytes: 40 * gib, MaxCount: 16,
		// Union of the members' profiles; they do not overlap, so a profile
		// also names the member it can run on.
		MIGProfiles: []string{"1g.5gb", "1g.10gb", "1g.20gb", "2g.10gb", "2g.20gb", "3g.20gb", "3g.40gb", "4g.20gb", "4g.40gb", "7g.40gb", "7g.80gb"},
	},
	{
		Name: "H100", MemoryBytes: 80 * gib, MaxCount: 8,
		MIGProfiles: []string{"1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"},
		Aliases:     []string{"H100-80GB", "H100-80G"},
	},
	{
		Name: "H200", MemoryBytes: 141 * gib, MaxCount: 8,
		MIGProfiles: []string{"1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"},
		Aliases:     []string{"H200-141GB"},
	},
	{
		Name: "B200", MemoryBytes: 180 * gib, MaxCount: 8,
		MIGProfiles: []string{"1g.23gb", "1g.45gb", "2g.45gb", "3g.90gb", "4g.90gb", "7g.180gb"},
	},
	{Name: "V100", MemoryBytes: 16 * gib, MaxCount: 8, Aliases: []string{"V100-16GB", "V100-32GB"}},
	{
		Name: "RTX-PRO-6000", MemoryBytes: 96 * gib, MaxCount: 8,
		Aliases: []string{"RTXPRO6000", "RTX-PRO-6000-BLACKWELL"},
	},
}

// byName indexes the catalogue by normalised name and alias.
var byName = func() map[string]int {
	m := make(map[string]int, 2*len(catalogue))
	for i, a := range catalogue {
		m[normalizeAcceleratorName(a.Name)] = i
		for _, alias := range a.Aliases {
			m[normalizeAcceleratorName(alias)] = i
		}
	}
	return m
}()

// maxAnyCount caps a bare count ("2", any type): the largest MaxCount.
var maxAnyCount = func() int {
	n := 0
	for _, a := range catalogue {
		n = max(n, a.MaxCount)
	}
	return n
}()

// normalizeAcceleratorName upper-cases s and reads spaces and underscores as
// dashes, so "rtx pro 6000" and "a100_80gb" find their entries.
func normalizeAcceleratorName(s string) string {
	s = strings.ToUpper(strings.TrimSpace(s))
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '_' {
			return '-'
		}
		return r
	}, s)
}

// Accelerators returns a copy of the catalogue: every concrete model and the
// A100 family, in a fixed order.
func Accelerators() []Accelerator {
	out := make([]Accelerator, len(catalogue))
	for i, a := range catalogue {
		a.Members = slices.Clone(a.Members)
		a.MIGProfiles = slices.Clone(a.MIGProfiles)
		a.Aliases = slices.Clone(a.Aliases)
		out[i] = a
	}
	return out
}

// LookupAccelerator finds a catalogue entry by name or alias, ignoring case.
func LookupAccelerator(name string) (Accelerator, bool) {
	i, ok := byName[normalizeAcceleratorName(name)]
	if !ok {
		return Accelerator{}, false
	}
	return catalogue[i], true
}

// CanonicalAccelerator returns the catalogue name for name ("a100-80g" →
// "A100-80GB"), or false when the catalogue does not know it.
func CanonicalAccelerator(name string) (string, bool) {
	a, ok := LookupAccelerator(name)
	return a.Name, ok
}

// AcceleratorFromProductName maps the product name nvidia-smi prints
// ("NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "Tesla T4") to a
// concrete catalogue name. It reports false for a product the catalogue does
// not know, which a node inventory should keep under its own name rather than
// guess.
func AcceleratorFromProductName(product string) (string, bool) {
	// Tokens, not substrings: "A10" must not match "A100", nor "L4" "L40S".
	tokens := strings.FieldsFunc(strings.ToUpper(product), func(r rune) bool {
		return r == ' ' || r == '-' || r == '_' || r == '/'
	})
	has := func(t string) bool { return slices.Contains(tokens, t) }
	switch {
	case has("A100"):
		if has("80GB") {
			return "A100-80GB", true
		}
		return "A100-40GB", true
	case has("H100"):
		return "H100", true
	case has("H200"):
		return "H200", true
	case has("B200"):
		return "B200", true
	case has("L40S"):
		return "L40S", true
	case has("L4"):
		return "L4", true
	case has("A10G"):
		return "A10G", true
	case has("A10"):
		return "A10", true
	case has("T4"):
		return "T4", true
	case has("V100"), has("V100S"):
		return "V100", true
	}
	for i := 0; i+2 < len(tokens); i++ {
		if tokens[i] == "RTX" && tokens[i+1] == "PRO" && tokens[i+2] == "6000" {
			return "RTX-PRO-6000", true
		}
	}
	return "", false
}
