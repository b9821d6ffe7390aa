package discovery

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"

	"github.com/taskgate/taskgate/tasks"
	"github.com/taskgate/taskgate/tasks/scheduler"
)

// ErrGPUDetection: nvidia-smi ran but its output says the GPUs cannot be
// used (driver not loaded, NVML mismatch, a GPU off the bus) or does not
// parse.
var ErrGPUDetection = errors.New("GPU detection")

// ParseDeclaredGPUs reads a declared inventory such as "A100:4,H100:8" (the
// value of TASKGATE_NODE_GPUS) into whole, healthy devices numbered from 0
// in the order given. Each entry is TYPE:COUNT or a bare TYPE (one device),
// with the limits of tasks.ParseGPU. The family "A100" is declared as
// A100-40GB: a node that does not say which model it has is not promised to
// runs that need 80 GB. MIG partitions cannot be declared; they are detected.
func ParseDeclaredGPUs(spec string) ([]scheduler.Device, error) {
	if strings.TrimSpace(spec) == "" {
		return nil, nil
	}
	var devs []scheduler.Device
	for entry := range strings.SplitSeq(spec, ",") {
		g, err := tasks.ParseGPU(entry)
		if err != nil {
			return nil, fmt.Errorf("declared GPUs: %w", err)
		}
		switch {
		case g.Type == "":
			return nil, fmt.Errorf("declared GPUs: %q: a declared GPU needs a type, as in A100:4", strings.TrimSpace(entry))
		case g.MIG != "":
			return nil, fmt.Errorf("declared GPUs: %q: MIG partitions are detected with nvidia-smi, not declared", strings.TrimSpace(entry))
		}
		typ := scheduler.CanonicalDeviceType(g.Type)
		for range g.Count {
			i := len(devs)
			devs = append(devs, scheduler.Device{Type: typ, Index: i, Parent: i, Healthy: true})
		}
	}
	return devs, nil
}

// QueryGPUArgs are the arguments DetectGPUs gives nvidia-smi for the CSV
// inventory that ParseNvidiaSMI reads.
var QueryGPUArgs = []string{"--query-gpu=index,name,uuid,memory.total", "--format=csv,noheader"}

var (
	gpuLineRE = regexp.MustCompile(`^GPU\s+(\d+):\s*(.*?)\s*\(UUID:\s*([^)\s]+)\s*\)\s*$`)
	migLineRE = regexp.MustCompile(`^\s*MIG\s+(\S+)\s+Device\s+(\d+):\s*\(UUID:\s*([^)\s]+)\s*\)\s*$`)
)

// ParseNvidiaSMI reads the output of `nvidia-smi --query-gpu=index,name,
// uuid,memory.total --format=csv,noheader` and of `nvidia-smi -L`. A GPU
// that -L shows with MIG partitions is replaced by its partitions, each its
// own device (Index the MIG device index, Parent the GPU index, UUID the
// MIG-… UUID that CUDA_VISIBLE_DEVICES takes). Product names become catalogue
// names where the catalogue knows them. listL may be empty (no MIG). "No
// devices were found" is no devices; a driver failure is ErrGPUDetection.
func ParseNvidiaSMI(queryCSV, listL string) ([]scheduler.Device, error) {
	if noDevices(queryCSV) || noDevices(listL) {
		return nil, nil
	}
	if err := smiFailure(queryCSV); err != nil {
		return nil, err
	}
	if err := smiFailure(listL); err != nil {
		return nil, err
	}
	var gpus []scheduler.Device
	for line := range strings.Lines(queryCSV) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		fields := strings.Split(line, ",")
		if len(fields) != 4 {
			return nil, fmt.Errorf("%w: nvidia-smi query line %q: want index, name, uuid, memory.total", ErrGPUDetection, line)
		}
		for i := range fields {
			fields[i] = strings.TrimSpace(fields[i])
		}
		idx, err := strconv.Atoi(fields[0])
		if err != nil || idx < 0 {
			return nil, fmt.Errorf("%w: nvidia-smi query line %q: bad index", ErrGPUDetection, line)
		}
		gpus = append(gpus, scheduler.Device{
			Type:        productType(fields[1]),
			Index:       idx,
			Parent:      idx,
			UUID:        notAvailable(fields[2]),
			MemoryBytes: parseMiB(fields[3]),
			Healthy:     true,
		})
	}

	// -L: GPU lines, each followed by its MIG lines.
	type listed struct {
		gpu  scheduler.Device
		migs []scheduler.Device
	}
	var list []*listed
	for line := range strings.Lines(listL) {
		if strings.TrimSpace(line) == "" {
			continue
		}
		line = strings.TrimRight(line, "\r\n")
		if m := gpuLineRE.FindStringSubmatch(line); m != nil {
			idx, _ := strconv.Atoi(m[1])
			list = append(list, &listed{gpu: scheduler.Device{Type: productType(m[2]), Index: idx, Parent: idx, UUID: m[3], Healthy: true}})
			continue
		}
		if m := migLineRE.FindStringSubmatch(line); m != nil && len(list) > 0 {
			cur := list[len(list)-1]
			idx, _ := strconv.Atoi(m[2])
			cur.migs = append(cur.migs, scheduler.Device{
				Type: cur.gpu.Type, MIG: strings.ToLower(m[1]), Index: idx,
				Parent: cur.gpu.Index, UUID: m[3], Healthy: true,
			})
			continue
		}
		return nil, fmt.Errorf("%w: nvidia-smi -L line %q", ErrGPUDetection, strings.TrimSpace(line))
	}
	if len(gpus) == 0 {
		// Without the CSV, -L alone still names the GPUs.
		for _, l := range list {
			gpus = append(gpus, l.gpu)
		}
	}

	var devs []scheduler.Device
	for _, g := range gpus {
		i := slices.IndexFunc(list, func(l *listed) bool { return l.gpu.Index == g.Index })
		if i >= 0 && len(list[i].migs) > 0 {
			// In MIG mode only the partitions are usable, not the GPU.
			devs = append(devs, list[i].migs...)
			continue
		}
		devs = append(devs, g)
	}
	slices.SortStableFunc(devs, func(a, b scheduler.Device) int {
		if a.Parent != b.Parent {
			return a.Parent - b.Parent
		}
		return a.Index - b.Index
	})
	return devs, nil
}

// smiFailure recognises the messages nvidia-smi prints instead of an
// inventory.
func smiFailure(out string) error {
	for _, marker := range []string{"NVIDIA-SMI has failed", "Failed to initialize NVML", "Unable to determine the device handle", "Unknown Error", "GPU is lost"} {
		if strings.Contains(out, marker) {
			return fmt.Errorf("%w: %s", ErrGPUDetection, firstLine(out, marker))
		}
	}
	return nil
}

// noDevices reports the message of a working driver on a machine without
// GPUs.
func noDevices(out string) bool { return strings.Contains(out, "No devices were found") }

func firstLine(out, marker string) string {
	for line := range strings.Lines(out) {
		if strings.Contains(line, marker) {
			return strings.TrimSpace(line)
		}
	}
	return strings.TrimSpace(out)
}

func productType(product string) string {
	if name, ok := tasks.AcceleratorFromProductName(product); ok {
		return name
	}
	return strings.TrimSpace(product)
}

func notAvailable(s string) string {
	if strings.HasPrefix(s, "[") { // "[N/A]", "[Not Supported]"
		return ""
	}
	return s
}

// parseMiB reads "81920 MiB" as bytes; anything else is 0 (unknown).
func parseMiB(s string) int64 {
	num, unit, _ := strings.Cut(strings.TrimSpace(s), " ")
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > 1<<40 || strings.TrimSpace(unit) != "MiB" {
		return 0
	}
	return n << 20
}

// CommandRunner runs a program and returns its standard output, as
// exec.Cmd.Output does; DetectGPUs takes one so tests can replay recorded
// outputs.
type CommandRunner func(ctx context.Context, name string, args ...string) ([]byte, error)

// ExecCommand is the CommandRunner that really runs the program.
func ExecCommand(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, name, args...).Output()
}

// DetectGPUs asks nvidia-smi for this machine's GPUs and MIG partitions. A
// machine without nvidia-smi has no GPUs: that is no error. run nil means
// ExecCommand.
func DetectGPUs(ctx context.Context, run CommandRunner) ([]scheduler.Device, error) {
	if run == nil {
		run = ExecCommand
	}
	query, err := smi(ctx, run, QueryGPUArgs...)
	if err != nil || noDevices(query) {
		if errors.Is(err, exec.ErrNotFound) || noDevices(query) {
			return nil, nil
		}
		return nil, err
	}
	list, err := smi(ctx, run, "-L")
	if err != nil {
		return nil, err
	}
	return ParseNvidiaSMI(query, list)
}

// smi runs nvidia-smi and folds a failure's message into the error; a
// missing binary keeps exec.ErrNotFound in the chain.
func smi(ctx context.Context, run CommandRunner, args ...string) (string, error) {
	out, err := run(ctx, "nvidia-smi", args...)
	if err == nil {
		return string(out), nil
	}
	if errors.Is(err, exec.ErrNotFound) {
		return "", err
	}
	msg := string(out)
	if ee, ok := errors.AsType[*exec.ExitError](err); ok {
		msg += string(ee.Stderr)
	}
	if noDevices(msg) {
		return msg, nil
	}
	if f := smiFailure(msg); f != nil {
		return "", f
	}
	return "", fmt.Errorf("%w: nvidia-smi %s: %w", ErrGPUDetection, strings.Join(args, " "), err)
}

// LocalNode describes this machine as a healthy node with the given GPUs:
// every CPU the process may use (runtime.NumCPU) and the memory in
// /proc/meminfo (0 where there is none). Container memory limits are not
// read; declare the node yourself where they matter.
func LocalNode(id string, gpus []scheduler.Device) scheduler.Node {
	var mem int64
	if f, err := os.Open("/proc/meminfo"); err == nil {
		mem, _ = parseMeminfo(f)
		f.Close()
	}
	return scheduler.Node{
		ID:          id,
		Labels:      map[string]string{"os": runtime.GOOS, "arch": runtime.GOARCH},
		MilliCPU:    int64(runtime.NumCPU()) * 1000,
		MemoryBytes: mem,
		Devices:     slices.Clone(gpus),
		Healthy:     true,
	}
}

// parseMeminfo reads MemTotal from /proc/meminfo, in bytes.
func parseMeminfo(r io.Reader) (int64, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("MemTotal:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("meminfo: MemTotal line %q", rest)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 || kb > 1<<50 {
			return 0, fmt.Errorf("meminfo: MemTotal %q", f[0])
		}
		return kb << 10, nil
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("meminfo: no MemTotal")
}
