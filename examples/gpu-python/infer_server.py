"""A tiny inference server on the replica's GPU, behind taskgate's proxy.

taskgate starts it with the replica's devices in CUDA_VISIBLE_DEVICES and
the port to listen on in PORT (on 127.0.0.1: the proxy in front checks
credentials). It serves:

  GET  /health  {"status": "ok", "device": …}, or 503 with the reason
                torch cannot run (not installed, no CUDA device)
  POST /infer   {"size": 4096, "iterations": 20}: a bf16 "model" (an n×n
                weight applied iterations times to a random batch) on the
                GPU; answers the device, CUDA_VISIBLE_DEVICES, milliseconds,
                TFLOP/s and a checksum, or 503 with the reason torch cannot
                run. The caller is in X-Taskgate-Subject.

Without torch it still serves, so that the reason reaches the caller as a
clear 503 rather than as a server that crashes and restarts.
"""

import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VISIBLE = os.environ.get("CUDA_VISIBLE_DEVICES", "")

try:
    import torch
except ImportError:
    torch = None

if torch is None:
    PROBLEM = "torch is not installed for %s: pip install torch" % sys.executable
elif not torch.cuda.is_available():
    PROBLEM = "no CUDA device visible to torch %s (CUDA_VISIBLE_DEVICES=%r)" % (torch.__version__, VISIBLE)
else:
    PROBLEM = ""

DEVICE = torch.cuda.get_device_name(0) if not PROBLEM else ""
# One model at a time on the GPU; taskgate's MaxInFlight bounds the queue.
LOCK = threading.Lock()
WEIGHTS = {}


def infer(size, iterations):
    with LOCK:
        w = WEIGHTS.get(size)
        if w is None:
            w = WEIGHTS[size] = torch.randn(size, size, device="cuda", dtype=torch.bfloat16) / size**0.5
        x = torch.randn(size, size, device="cuda", dtype=torch.bfloat16)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iterations):
            x = torch.tanh(x @ w)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
    return {
        "device": DEVICE,
        "cuda_visible_devices": VISIBLE,
        "ms": round(seconds * 1000, 3),
        "tflops": round(2 * size**3 * iterations / seconds / 1e12, 1),
        "checksum": float(x.float().abs().mean()),
    }


class Handler(BaseHTTPRequestHandler):
    def answer(self, status, body):
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        if self.path != "/health":
            return self.answer(404, {"error": "not found"})
        if PROBLEM:
            return self.answer(503, {"status": "unavailable", "error": PROBLEM})
        self.answer(200, {"status": "ok", "device": DEVICE, "cuda_visible_devices": VISIBLE})

    def do_POST(self):
        if self.path != "/infer":
            return self.answer(404, {"error": "not found"})
        length = int(self.headers.get("Content-Length") or 0)
        try:
            args = json.loads(self.rfile.read(length) or b"{}")
            size = int(args.get("size") or 4096)
            iterations = int(args.get("iterations") or 20)
        except (ValueError, AttributeError) as e:
            return self.answer(400, {"error": "bad request: %s" % e})
        if not 64 <= size <= 16384 or not 1 <= iterations <= 1000:
            return self.answer(422, {"error": "size must be in [64, 16384], iterations in [1, 1000]"})
        if PROBLEM:
            return self.answer(503, {"error": PROBLEM})
        out = infer(size, iterations)
        out["caller"] = self.headers.get("X-Taskgate-Subject", "")
        self.answer(200, out)

    def log_message(self, fmt, *args):
        print(fmt % args, flush=True)


if __name__ == "__main__":
    port = int(os.environ["PORT"])
    print("infer_server on 127.0.0.1:%d, device %r, CUDA_VISIBLE_DEVICES=%r%s"
          % (port, DEVICE, VISIBLE, (": " + PROBLEM) if PROBLEM else ""), flush=True)
    ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
