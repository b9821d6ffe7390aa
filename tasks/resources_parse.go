package tasks

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
)

// Sentinel errors of the resource-spec parser. Every error Parse returns is a
// *SpecError wrapping one of them, so callers can match the class with
// errors.Is and still show the text at fault.
var (
	// ErrInvalidQuantity: CPU, memory or disk text that is not a quantity,
	// is negative, or does not fit in 64 bits.
	ErrInvalidQuantity = errors.New("invalid quantity")
	// ErrInvalidGPUSpec: GPU text with no recognisable shape.
	ErrInvalidGPUSpec = errors.New("invalid GPU spec")
	// ErrUnknownAccelerator: a GPU type the catalogue does not know.
	ErrUnknownAccelerator = errors.New("unknown accelerator type")
	// ErrInvalidGPUCount: a zero, negative or over-the-limit GPU count.
	ErrInvalidGPUCount = errors.New("invalid GPU count")
	// ErrInvalidMIGProfile: a MIG partition the GPU type does not offer.
	ErrInvalidMIGProfile = errors.New("invalid MIG profile")
)

// SpecError reports a resource field that does not parse. Its message quotes
// the offending text so that a definition error points at the typo.
type SpecError struct {
	// Field is the Resources field at fault: "cpu", "memory", "disk", "gpu"
	// or "gpu_fallbacks[i]".
	Field string
	// Text is the offending text as written.
	Text string
	// Err is one of the sentinel errors above.
	Err error
	// Detail says what is wrong in words.
	Detail string
}

func (e *SpecError) Error() string {
	if e.Detail == "" {
		return fmt.Sprintf("%s %q: %v", e.Field, e.Text, e.Err)
	}
	return fmt.Sprintf("%s %q: %v: %s", e.Field, e.Text, e.Err, e.Detail)
}

func (e *SpecError) Unwrap() error { return e.Err }

// MaxGPUAlternatives bounds GPU plus GPUFallbacks: every alternative costs
// the scheduler a lookup per decision.
const MaxGPUAlternatives = 8

// maxSpecLen bounds the text the parsers look at; nothing valid is longer,
// and it keeps big-number arithmetic on hostile input cheap.
const maxSpecLen = 64

// Parse checks every field of r and converts it to numbers. The first error
// is returned as a *SpecError quoting the offending text. Empty fields ask for
// nothing.
func (r Resources) Parse() (Request, error) {
	var req Request
	var err error
	if r.CPU != "" {
		if req.MilliCPU, err = parseMilliCPU("cpu", r.CPU); err != nil {
			return Request{}, err
		}
	}
	if r.Memory != "" {
		if req.MemoryBytes, err = parseBytes("memory", r.Memory); err != nil {
			return Request{}, err
		}
	}
	if r.Disk != "" {
		if req.DiskBytes, err = parseBytes("disk", r.Disk); err != nil {
			return Request{}, err
		}
	}
	if r.GPU == "" {
		if len(r.GPUFallbacks) > 0 {
			return Request{}, &SpecError{Field: "gpu_fallbacks", Text: strings.Join(r.GPUFallbacks, ","),
				Err: ErrInvalidGPUSpec, Detail: "fallbacks without a gpu"}
		}
		return req, nil
	}
	if 1+len(r.GPUFallbacks) > MaxGPUAlternatives {
		return Request{}, &SpecError{Field: "gpu_fallbacks", Text: strings.Join(r.GPUFallbacks, ","),
			Err: ErrInvalidGPUSpec, Detail: fmt.Sprintf("more than %d alternatives", MaxGPUAlternatives)}
	}
	req.GPUs = make([]GPURequest, 0, 1+len(r.GPUFallbacks))
	g, err := parseGPU("gpu", r.GPU)
	if err != nil {
		return Request{}, err
	}
	req.GPUs = append(req.GPUs, g)
	for i, spec := range r.GPUFallbacks {
		g, err := parseGPU(fmt.Sprintf("gpu_fallbacks[%d]", i), spec)
		if err != nil {
			return Request{}, err
		}
		req.GPUs = append(req.GPUs, g)
	}
	return req, nil
}

// ParseQuantity reads a Kubernetes quantity as bytes: a decimal number
// ("1.5", "129e6") with an optional suffix, binary (Ki Mi Gi Ti Pi Ei) or
// decimal (k/K M G T P E). A fractional byte count rounds up, as in
// Kubernetes.
func ParseQuantity(s string) (int64, error) { return parseBytes("quantity", s) }

// ParseMilliCPU reads a CPU amount in cores ("2", "0.5") or millicores
// ("500m") as millicores. Finer than a millicore rounds up.
func ParseMilliCPU(s string) (int64, error) { return parseMilliCPU("cpu", s) }

// FormatQuantity writes n bytes with the largest binary suffix that keeps it
// exact ("8Gi", "1536Mi", "1000"); ParseQuantity reads it back to n.
func FormatQuantity(n int64) string {
	if n <= 0 {
		return strconv.FormatInt(n, 10)
	}
	suffixes := []string{"Ei", "Pi", "Ti", "Gi", "Mi", "Ki"}
	for i, suf := range suffixes {
		shift := uint(10 * (len(suffixes) - i))
		if n%(int64(1)<<shift) == 0 {
			return strconv.FormatInt(n>>shift, 10) + suf
		}
	}
	return strconv.FormatInt(n, 10)
}

// quantity is a decimal number split for exact arithmetic: the value is
// mantissa × 10^exp10 × 2^exp2.
type quantity struct {
	negative bool
	mantissa *big.Int
	exp10    int
	exp2     int
	suffix   string
}

// suffixes maps a quantity suffix to its powers of ten and two.
var suffixes = map[string][2]int{
	"": {0, 0}, "m": {-3, 0},
	"k": {3, 0}, "K": {3, 0}, "M": {6, 0}, "G": {9, 0}, "T": {12, 0}, "P": {15, 0}, "E": {18, 0},
	"Ki": {0, 10}, "Mi": {0, 20}, "Gi": {0, 30}, "Ti": {0, 40}, "Pi": {0, 50}, "Ei": {0, 60},
}

// scanQuantity splits s into its number and suffix. It accepts exactly the
// Kubernetes grammar: sign, digits with at most one point, an optional
// decimal exponent, a suffix.
func scanQuantity(s string) (quantity, string, bool) {
	var q quantity
	if s == "" || len(s) > maxSpecLen {
		return q, "not a number", false
	}
	i := 0
	if s[i] == '+' || s[i] == '-' {
		q.negative = s[i] == '-'
		i++
	}
	var digits strings.Builder
	frac := 0
	seenPoint := false
	for ; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits.WriteByte(c)
			if seenPoint {
				frac++
			}
			continue
		case c == '.' && !seenPoint:
			seenPoint = true
			continue
		}
		break
	}
	if digits.Len() == 0 {
		return q, "not a number", false
	}
	q.mantissa, _ = new(big.Int).SetString(digits.String(), 10)
	q.exp10 = -frac
	// An exponent is e/E followed by digits; a lone "E" is the exa suffix.
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		j := i + 1
		if j < len(s) && (s[j] == '+' || s[j] == '-') {
			j++
		}
		k := j
		for k < len(s) && s[k] >= '0' && s[k] <= '9' {
			k++
		}
		if k > j {
			exp, err := strconv.Atoi(s[i+1 : k])
			// maxSpecLen digits cannot make a value past 10^±100 worth keeping.
			if err != nil || exp > 100 || exp < -100 {
				return q, "exponent out of range", false
			}
			q.exp10 += exp
			i = k
		}
	}
	q.suffix = s[i:]
	p, ok := suffixes[q.suffix]
	if !ok {
		return q, fmt.Sprintf("unknown suffix %q", q.suffix), false
	}
	q.exp10 += p[0]
	q.exp2 += p[1]
	return q, "", true
}

// ceilInt64 returns ceil(q × 10^shift10) when it fits in an int64.
func (q quantity) ceilInt64(shift10 int) (int64, bool) {
	num := new(big.Int).Set(q.mantissa)
	num.Lsh(num, uint(q.exp2))
	den := big.NewInt(1)
	ten := big.NewInt(10)
	if e := q.exp10 + shift10; e >= 0 {
		num.Mul(num, new(big.Int).Exp(ten, big.NewInt(int64(e)), nil))
	} else {
		den.Exp(ten, big.NewInt(int64(-e)), nil)
	}
	quo, rem := new(big.Int).QuoRem(num, den, new(big.Int))
	if rem.Sign() != 0 {
		quo.Add(quo, big.NewInt(1))
	}
	if !quo.IsInt64() {
		return 0, false
	}
	return quo.Int64(), true
}

func parseAmount(field, text string, shift10 int, allowMilli bool) (int64, error) {
	s := strings.TrimSpace(text)
	q, detail, ok := scanQuantity(s)
	if !ok {
		return 0, &SpecError{Field: field, Text: text, Err: ErrInvalidQuantity, Detail: detail}
	}
	if q.suffix == "m" && !allowMilli {
		return 0, &SpecError{Field: field, Text: text, Err: ErrInvalidQuantity, Detail: `"m" is milli, not mega: write "M" or "Mi"`}
	}
	if q.negative && q.mantissa.Sign() != 0 {
		return 0, &SpecError{Field: field, Text: text, Err: ErrInvalidQuantity, Detail: "negative"}
	}
	n, ok := q.ceilInt64(shift10)
	if !ok {
		return 0, &SpecError{Field: field, Text: text, Err: ErrInvalidQuantity, Detail: "too large"}
	}
	return n, nil
}

func parseBytes(field, text string) (int64, error) { return parseAmount(field, text, 0, false) }

func parseMilliCPU(field, text string) (int64, error) {
	s := strings.TrimSpace(text)
	// CPUs are counted in cores or millicores; "2Gi" of CPU is a mistake.
	if q, _, ok := scanQuantity(s); ok && q.suffix != "" && q.suffix != "m" {
		return 0, &SpecError{Field: field, Text: text, Err: ErrInvalidQuantity, Detail: `CPU takes cores ("2", "0.5") or millicores ("500m")`}
	}
	return parseAmount(field, text, 3, true)
}

// migRE is the shape of a MIG profile: compute slices, "g.", memory in GB.
var migRE = regexp.MustCompile(`^[0-9]+g\.[0-9]+gb$`)

// ParseGPU reads one GPU alternative: "TYPE:COUNT" ("A100:2", "h100:8"), a
// MIG partition ("A100:1g.10gb"), a bare count ("2", any type), or a bare
// type ("H100", one device, as in Modal). The type is canonicalised; a family
// with a MIG profile becomes the member that offers the profile.
func ParseGPU(spec string) (GPURequest, error) { return parseGPU("gpu", spec) }

func parseGPU(field, text string) (GPURequest, error) {
	fail := func(err error, format string, args ...any) (GPURequest, error) {
		return GPURequest{}, &SpecError{Field: field, Text: text, Err: err, Detail: fmt.Sprintf(format, args...)}
	}
	s := strings.TrimSpace(text)
	if s == "" {
		return fail(ErrInvalidGPUSpec, "empty")
	}
	if len(s) > maxSpecLen {
		return fail(ErrInvalidGPUSpec, "longer than %d characters", maxSpecLen)
	}
	typ, rest, hasColon := strings.Cut(s, ":")
	typ, rest = strings.TrimSpace(typ), strings.TrimSpace(rest)
	if !hasColon {
		if c := typ[0]; c == '-' || c == '+' || (c >= '0' && c <= '9') {
			n, err := parseCount(typ)
			if err != nil {
				return fail(ErrInvalidGPUCount, "%v", err)
			}
			if n > maxAnyCount {
				return fail(ErrInvalidGPUCount, "%d is over the limit of %d for any type", n, maxAnyCount)
			}
			return GPURequest{Count: n}, nil
		}
		rest = "1"
	}
	if typ == "" {
		return fail(ErrInvalidGPUSpec, `no type before ":"`)
	}
	acc, ok := LookupAccelerator(typ)
	if !ok {
		return fail(ErrUnknownAccelerator, "%q is not in the catalogue", typ)
	}
	if rest == "" {
		return fail(ErrInvalidGPUSpec, `no count or MIG profile after ":"`)
	}
	if profile := strings.ToLower(rest); migRE.MatchString(profile) {
		if len(acc.MIGProfiles) == 0 {
			return fail(ErrInvalidMIGProfile, "%s has no MIG partitions", acc.Name)
		}
		if !acc.HasMIG(profile) {
			return fail(ErrInvalidMIGProfile, "%s offers %s", acc.Name, strings.Join(acc.MIGProfiles, " "))
		}
		name := acc.Name
		for _, m := range acc.Members {
			if member, _ := LookupAccelerator(m); member.HasMIG(profile) {
				name = member.Name
				break
			}
		}
		return GPURequest{Type: name, Count: 1, MIG: profile}, nil
	}
	n, err := parseCount(rest)
	if err != nil {
		return fail(ErrInvalidGPUCount, "%v", err)
	}
	if n > acc.MaxCount {
		return fail(ErrInvalidGPUCount, "%d is over the limit of %d for %s", n, acc.MaxCount, acc.Name)
	}
	return GPURequest{Type: acc.Name, Count: n}, nil
}

// parseCount reads a positive decimal device count.
func parseCount(s string) (int, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case errors.Is(err, strconv.ErrRange):
		return 0, errors.New("count out of range")
	case err != nil:
		return 0, errors.New("count is not a whole number")
	case n < 1:
		return 0, errors.New("count must be at least 1")
	case n > math.MaxInt32:
		return 0, errors.New("count out of range")
	}
	return int(n), nil
}
