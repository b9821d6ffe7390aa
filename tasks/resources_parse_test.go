package tasks

import (
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestParseQuantity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want int64
	}{
		{"0", 0},
		{"1", 1},
		{"128974848", 128974848},
		{"512Ki", 512 << 10},
		{"512Mi", 512 << 20},
		{"8Gi", 8 << 30},
		{"1.5Gi", 3 << 29},
		{"2Ti", 2 << 40},
		{"1Pi", 1 << 50},
		{"1Ei", 1 << 60},
		{"1k", 1000},
		{"1K", 1000},
		{"129M", 129_000_000},
		{"1G", 1_000_000_000},
		{"2T", 2_000_000_000_000},
		{"1P", 1_000_000_000_000_000},
		{"1E", 1_000_000_000_000_000_000},
		{"129e6", 129_000_000},
		{"129E6", 129_000_000},
		{"1.5e3", 1500},
		{"0.1Ki", 103}, // 102.4 rounds up, as in Kubernetes
		{"0.5", 1},
		{"+1Gi", 1 << 30},
		{"-0", 0},
		{" 8Gi ", 8 << 30},
		{".5Ki", 512},
		{"5.", 5},
		{"7Ei", 7 << 60},
		{"9223372036854775807", math.MaxInt64},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseQuantity(tt.in)
			if err != nil {
				t.Fatalf("ParseQuantity(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseQuantity(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseQuantityErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		detail string
	}{
		{"", "not a number"},
		{"Gi", "not a number"},
		{"abc", "not a number"},
		{"-1", "negative"},
		{"-1Gi", "negative"},
		{"8Gb", `unknown suffix "Gb"`},
		{"8 Gi", `unknown suffix " Gi"`},
		{"8gi", `unknown suffix "gi"`},
		{"1.2.3", `unknown suffix ".3"`},
		{"1e", `unknown suffix "e"`},
		{"1e999", "exponent out of range"},
		{"8Ei", "too large"},
		{"9223372036854775808", "too large"},
		{"100P00", `unknown suffix "P00"`},
		{"500m", `"m" is milli, not mega`},
		{"0x10", `unknown suffix "x10"`},
		{strings.Repeat("9", 65), "not a number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			_, err := ParseQuantity(tt.in)
			var se *SpecError
			if !errors.As(err, &se) {
				t.Fatalf("ParseQuantity(%q) error = %v, want *SpecError", tt.in, err)
			}
			if !errors.Is(err, ErrInvalidQuantity) {
				t.Fatalf("ParseQuantity(%q) error = %v, want ErrInvalidQuantity", tt.in, err)
			}
			if se.Text != tt.in || !strings.Contains(err.Error(), tt.detail) {
				t.Fatalf("ParseQuantity(%q) error = %q, want text quoted and %q", tt.in, err, tt.detail)
			}
		})
	}
}

func TestParseMilliCPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"2", 2000, false},
		{"0.5", 500, false},
		{"500m", 500, false},
		{"1.25", 1250, false},
		{"2500m", 2500, false},
		{"0.0001", 1, false}, // rounds up to a millicore
		{"0", 0, false},
		{"64", 64000, false},
		{"2Gi", 0, true},
		{"2k", 0, true},
		{"-1", 0, true},
		{"one", 0, true},
		{"1e30", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseMilliCPU(tt.in)
			if gotErr := err != nil; gotErr != tt.wantErr {
				t.Fatalf("ParseMilliCPU(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Fatalf("ParseMilliCPU(%q) = %d, want %d", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseGPU(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want GPURequest
		text string // canonical String()
	}{
		{"A100:2", GPURequest{Type: "A100", Count: 2}, "A100:2"},
		{"h100:8", GPURequest{Type: "H100", Count: 8}, "H100:8"},
		{"A100-80GB:4", GPURequest{Type: "A100-80GB", Count: 4}, "A100-80GB:4"},
		{"a100-80g:4", GPURequest{Type: "A100-80GB", Count: 4}, "A100-80GB:4"},
		{"A100_40GB:16", GPURequest{Type: "A100-40GB", Count: 16}, "A100-40GB:16"},
		{"2", GPURequest{Count: 2}, "2"},
		{"H100", GPURequest{Type: "H100", Count: 1}, "H100:1"},
		{" T4 : 1 ", GPURequest{Type: "T4", Count: 1}, "T4:1"},
		{"rtx pro 6000:2", GPURequest{Type: "RTX-PRO-6000", Count: 2}, "RTX-PRO-6000:2"},
		{"A100:1g.10gb", GPURequest{Type: "A100-80GB", Count: 1, MIG: "1g.10gb"}, "A100-80GB:1g.10gb"},
		{"A100:1g.5gb", GPURequest{Type: "A100-40GB", Count: 1, MIG: "1g.5gb"}, "A100-40GB:1g.5gb"},
		{"A100-40GB:7g.40gb", GPURequest{Type: "A100-40GB", Count: 1, MIG: "7g.40gb"}, "A100-40GB:7g.40gb"},
		{"H100:3g.40gb", GPURequest{Type: "H100", Count: 1, MIG: "3g.40gb"}, "H100:3g.40gb"},
		{"H100:1G.10GB", GPURequest{Type: "H100", Count: 1, MIG: "1g.10gb"}, "H100:1g.10gb"},
		{"H200:7g.141gb", GPURequest{Type: "H200", Count: 1, MIG: "7g.141gb"}, "H200:7g.141gb"},
		{"B200:1g.23gb", GPURequest{Type: "B200", Count: 1, MIG: "1g.23gb"}, "B200:1g.23gb"},
		{"A10:4", GPURequest{Type: "A10", Count: 4}, "A10:4"},
		{"L40S:8", GPURequest{Type: "L40S", Count: 8}, "L40S:8"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseGPU(tt.in)
			if err != nil {
				t.Fatalf("ParseGPU(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("ParseGPU(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.text {
				t.Fatalf("String() = %q, want %q", s, tt.text)
			}
		})
	}
}

func TestParseGPUErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in     string
		err    error
		detail string
	}{
		{"", ErrInvalidGPUSpec, "empty"},
		{"   ", ErrInvalidGPUSpec, "empty"},
		{":2", ErrInvalidGPUSpec, `no type before ":"`},
		{"A100:", ErrInvalidGPUSpec, "no count or MIG profile"},
		{"H10:8", ErrUnknownAccelerator, `"H10" is not in the catalogue`},
		{"GTX1080", ErrUnknownAccelerator, `"GTX1080" is not in the catalogue`},
		{"A100:0", ErrInvalidGPUCount, "at least 1"},
		{"A100:-1", ErrInvalidGPUCount, "at least 1"},
		{"0", ErrInvalidGPUCount, "at least 1"},
		{"-3", ErrInvalidGPUCount, "at least 1"},
		{"H100:9", ErrInvalidGPUCount, "9 is over the limit of 8 for H100"},
		{"A10:5", ErrInvalidGPUCount, "5 is over the limit of 4 for A10"},
		{"17", ErrInvalidGPUCount, "17 is over the limit of 16 for any type"},
		{"H100:99999999999999999999", ErrInvalidGPUCount, "out of range"},
		{"H100:two", ErrInvalidGPUCount, "not a whole number"},
		{"H100:2:3", ErrInvalidGPUCount, "not a whole number"},
		{"H100:1.5", ErrInvalidGPUCount, "not a whole number"},
		{"H100:1g.5gb", ErrInvalidMIGProfile, "H100 offers 1g.10gb 1g.20gb"},
		{"A100-40GB:1g.10gb", ErrInvalidMIGProfile, "A100-40GB offers 1g.5gb"},
		{"A100:9g.90gb", ErrInvalidMIGProfile, "A100 offers"},
		{"T4:1g.5gb", ErrInvalidMIGProfile, "T4 has no MIG partitions"},
		{strings.Repeat("A", 65), ErrInvalidGPUSpec, "longer than 64"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			_, err := ParseGPU(tt.in)
			if !errors.Is(err, tt.err) {
				t.Fatalf("ParseGPU(%q) error = %v, want %v", tt.in, err, tt.err)
			}
			var se *SpecError
			if !errors.As(err, &se) || se.Text != tt.in || se.Field != "gpu" {
				t.Fatalf("ParseGPU(%q) error = %#v, want *SpecError for field gpu quoting the text", tt.in, err)
			}
			if !strings.Contains(err.Error(), tt.detail) || !strings.HasPrefix(err.Error(), `gpu "`) {
				t.Fatalf("ParseGPU(%q) error = %q, want it to contain %q", tt.in, err, tt.detail)
			}
		})
	}
}

func TestResourcesParse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   Resources
		want Request
	}{
		{"empty", Resources{}, Request{}},
		{"cpu only", Resources{CPU: "500m", Memory: "512Mi"}, Request{MilliCPU: 500, MemoryBytes: 512 << 20}},
		{
			"everything",
			Resources{CPU: "8", Memory: "64Gi", Disk: "1Ti", GPU: "H100:8", GPUFallbacks: []string{"A100-80GB:8", "a100:1g.10gb"}},
			Request{MilliCPU: 8000, MemoryBytes: 64 << 30, DiskBytes: 1 << 40, GPUs: []GPURequest{
				{Type: "H100", Count: 8}, {Type: "A100-80GB", Count: 8}, {Type: "A100-80GB", Count: 1, MIG: "1g.10gb"},
			}},
		},
		{"bare count", Resources{GPU: "2"}, Request{GPUs: []GPURequest{{Count: 2}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := tt.in.Parse()
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestResourcesParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    Resources
		field string
		text  string
		err   error
	}{
		{"cpu", Resources{CPU: "two"}, "cpu", "two", ErrInvalidQuantity},
		{"memory", Resources{Memory: "8GB"}, "memory", "8GB", ErrInvalidQuantity},
		{"disk", Resources{Disk: "-1Gi"}, "disk", "-1Gi", ErrInvalidQuantity},
		{"gpu", Resources{GPU: "H100:0"}, "gpu", "H100:0", ErrInvalidGPUCount},
		{"fallback", Resources{GPU: "H100:8", GPUFallbacks: []string{"A100:8", "X9:1"}}, "gpu_fallbacks[1]", "X9:1", ErrUnknownAccelerator},
		{"empty fallback", Resources{GPU: "H100:8", GPUFallbacks: []string{""}}, "gpu_fallbacks[0]", "", ErrInvalidGPUSpec},
		{"fallbacks without gpu", Resources{GPUFallbacks: []string{"A100:1"}}, "gpu_fallbacks", "A100:1", ErrInvalidGPUSpec},
		{"too many", Resources{GPU: "1", GPUFallbacks: strings.Split("1,1,1,1,1,1,1,1", ",")}, "gpu_fallbacks", "1,1,1,1,1,1,1,1", ErrInvalidGPUSpec},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tt.in.Parse()
			var se *SpecError
			if !errors.As(err, &se) || !errors.Is(err, tt.err) {
				t.Fatalf("Parse error = %v, want *SpecError wrapping %v", err, tt.err)
			}
			if se.Field != tt.field || se.Text != tt.text {
				t.Fatalf("SpecError field %q text %q, want %q %q", se.Field, se.Text, tt.field, tt.text)
			}
		})
	}
}

func TestGPURequestMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		req        string
		deviceType string
		mig        string
		want       bool
	}{
		{"A100:2", "A100-80GB", "", true},
		{"A100:2", "A100-40GB", "", true},
		{"A100:2", "H100", "", false},
		{"A100:2", "A100-80GB", "1g.10gb", false},
		{"A100-80GB:1", "A100-80GB", "", true},
		{"A100-80GB:1", "A100-40GB", "", false},
		{"a100-80g:1", "a100-80gb", "", true},
		{"2", "T4", "", true},
		{"2", "H100", "3g.40gb", false},
		{"A100:1g.10gb", "A100-80GB", "1g.10gb", true},
		{"A100:1g.10gb", "A100-80GB", "", false},
		{"A100:1g.10gb", "A100-80GB", "1g.20gb", false},
		{"H100:3g.40gb", "H100", "3g.40gb", true},
		{"H100:3g.40gb", "A100-80GB", "3g.40gb", false},
		{"H100:1", "Unknown-GPU", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.req+"/"+tt.deviceType+"/"+tt.mig, func(t *testing.T) {
			t.Parallel()
			g, err := ParseGPU(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if got := g.Matches(tt.deviceType, tt.mig); got != tt.want {
				t.Fatalf("%v.Matches(%q, %q) = %v, want %v", g, tt.deviceType, tt.mig, got, tt.want)
			}
		})
	}
}

func TestFormatQuantity(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   int64
		want string
	}{
		{0, "0"}, {1000, "1000"}, {1024, "1Ki"}, {1536 << 20, "1536Mi"}, {8 << 30, "8Gi"}, {1 << 60, "1Ei"}, {math.MaxInt64, "9223372036854775807"},
	}
	for _, tt := range tests {
		if got := FormatQuantity(tt.in); got != tt.want {
			t.Errorf("FormatQuantity(%d) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzParseGPU checks that no input panics and that every accepted spec
// prints as canonical text that parses back to the same request.
func FuzzParseGPU(f *testing.F) {
	for _, s := range []string{"A100:2", "h100:8", "A100-80GB:4", "2", "A100:1g.10gb", "H100:3g.40gb", "H10:8", "A100:0", ":", "rtx pro 6000:1", "A100:7g.80gb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		g, err := ParseGPU(s)
		if err != nil {
			var se *SpecError
			if !errors.As(err, &se) || se.Text != s {
				t.Fatalf("ParseGPU(%q) error %v is not a *SpecError quoting the input", s, err)
			}
			return
		}
		if g.Count < 1 {
			t.Fatalf("ParseGPU(%q) accepted count %d", s, g.Count)
		}
		back, err := ParseGPU(g.String())
		if err != nil || back != g {
			t.Fatalf("round trip %q -> %+v -> %q -> %+v, %v", s, g, g.String(), back, err)
		}
	})
}

// FuzzParseQuantity checks that no input panics, that results are never
// negative, and that FormatQuantity of a result parses back to it.
func FuzzParseQuantity(f *testing.F) {
	for _, s := range []string{"512Mi", "8Gi", "1.5Gi", "129e6", "1k", "0.1Ki", "-1", "8Ei", "1e999", "500m", "9223372036854775807"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseQuantity(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidQuantity) {
				t.Fatalf("ParseQuantity(%q) error %v is not ErrInvalidQuantity", s, err)
			}
			return
		}
		if n < 0 {
			t.Fatalf("ParseQuantity(%q) = %d < 0", s, n)
		}
		back, err := ParseQuantity(FormatQuantity(n))
		if err != nil || back != n {
			t.Fatalf("round trip %q -> %d -> %q -> %d, %v", s, n, FormatQuantity(n), back, err)
		}
		if _, err := ParseMilliCPU(s); err != nil && !errors.Is(err, ErrInvalidQuantity) {
			t.Fatalf("ParseMilliCPU(%q) error %v is not ErrInvalidQuantity", s, err)
		}
	})
}
