"""A matmul benchmark on the run's GPU: TFLOP/s and the device's name.

Inputs: size (n of the n×n matrices, default 8192), iterations (default
50), dtype (bfloat16, float16 or float32; default bfloat16). Without torch
or a visible CUDA device it fails for good, saying which.
"""

import os
import sys
import time

from taskgate_task import fail, inputs, outputs, progress

args = inputs()
size = int(args.get("size") or 8192)
iterations = int(args.get("iterations") or 50)
dtype_name = args.get("dtype") or "bfloat16"
visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")

try:
    import torch
except ImportError:
    fail("torch is not installed for %s: pip install torch" % sys.executable)
if not torch.cuda.is_available():
    fail("no CUDA device visible to torch %s (CUDA_VISIBLE_DEVICES=%r)" % (torch.__version__, visible))

device = torch.device("cuda")
name = torch.cuda.get_device_name(device)
dtype = getattr(torch, dtype_name)
print("%s (CUDA_VISIBLE_DEVICES=%s): %d×%d %s matmuls, %d iterations" % (name, visible, size, size, dtype_name, iterations))

a = torch.randn(size, size, device=device, dtype=dtype)
b = torch.randn(size, size, device=device, dtype=dtype)
for _ in range(3):  # warm-up: kernel selection, clocks
    a @ b
torch.cuda.synchronize()

rounds = min(5, iterations)
per_round = [iterations // rounds + (1 if r < iterations % rounds else 0) for r in range(rounds)]
start = time.perf_counter()
for r, n in enumerate(per_round):
    for _ in range(n):
        a @ b
    torch.cuda.synchronize()
    progress(r + 1, rounds, "round %d of %d" % (r + 1, rounds))
seconds = time.perf_counter() - start

tflops = 2 * size**3 * iterations / seconds / 1e12
print("%s: %.1f TFLOP/s" % (name, tflops))
outputs({
    "device": name,
    "cuda_visible_devices": visible,
    "tflops": round(tflops, 1),
    "size": size,
    "iterations": iterations,
    "dtype": dtype_name,
    "seconds": round(seconds, 3),
})
