#!/usr/bin/env python3
"""The usual way to run Szegedy et al.'s attack, kept for `advx bench` only.

This is how Foolbox 2's `LBFGSAttack` and advertorch's `LBFGSAttack` run the
paper's box-constrained L-BFGS: scipy's `fmin_l_bfgs_b` on one example at a
time, asking the framework for the loss and gradient at every evaluation,
with a search over c around it. Here the framework is ONNX Runtime running
the very backward graph advx exports (`models/mnist/backward/<m>.xent.onnx`)
at batch 1, so the two sides differ only in how the search is driven.

The search is advx's (`src/attack/search.rs`), step for step:

- minimise c * xent(x', target) + |x' - x|^2 over x' in [0, 1]^n;
- the first c is c_max; after a success the next c is sqrt(c * c_min) until
  a failure, then the geometric mean of the last failure and the last
  success; a failure at c_max, or a success at c_min, ends the search;
- each step starts from the previous step's solution (warm start) and runs
  at most `max_iterations` L-BFGS-B iterations (memory m, pgtol, factr);
- the least distorted success (sqrt(sum r^2 / n)) is kept, then shrunk by
  10 bisection steps along x + t * r to the smallest t that still reaches
  the target.

advx's refinement to the nearest point of the target region (on by
default) has no counterpart here; compare with advx's `refine: false` row
for the same method. One difference is scipy's: `fmin_l_bfgs_b` returns
its last iterate, advx's solver the best point it evaluated (the same point
unless a line search ended on a rounding-error exit).

Input (written by `advx bench`): --pairs JSON with the image shape, labels,
targets and options, and --images, the images as little-endian float32.
Output: --out JSON with one record per example and the attack's wall and
CPU time (the loop only: imports and session creation are not timed, as on
advx's side).
"""

import argparse
import json
import math
import platform
import sys
import time

import numpy as np
import onnxruntime as ort
import scipy
from scipy.optimize import fmin_l_bfgs_b


def session(path, threads, device):
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Subnormal numbers as zero, as advx's sessions (they are slow on x86).
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    if device == "cpu":
        providers = ["CPUExecutionProvider"]
    else:
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            sys.exit(
                f"lbfgs_scipy.py: --device {device} needs onnxruntime-gpu with the CUDA "
                f"execution provider; this onnxruntime has {ort.get_available_providers()}"
            )
        device_id = int(device.split(":")[1]) if ":" in device else 0
        providers = [("CUDAExecutionProvider", {"device_id": device_id})]
    return ort.InferenceSession(path, sess_options=options, providers=providers)


class Model:
    """The forward model (predictions) and its xent backward graph (loss, gradient), batch 1."""

    def __init__(self, forward, backward, threads, device, shape):
        self.forward = session(forward, threads, device)
        self.backward = session(backward, threads, device)
        self.input = self.forward.get_inputs()[0].name
        self.scores = self.forward.get_outputs()[0].name
        image = [i.name for i in self.backward.get_inputs() if i.name != "target"][0]
        self.backward_input = image
        self.grad = "grad." + image
        self.shape = (1,) + tuple(shape[1:])

    def predict(self, x):
        image = x.astype(np.float32).reshape(self.shape)
        return int(np.argmax(self.forward.run([self.scores], {self.input: image})[0][0]))

    def loss_and_grad(self, x, target):
        image = x.astype(np.float32).reshape(self.shape)
        loss, grad = self.backward.run(
            ["loss", self.grad], {self.backward_input: image, "target": np.array([target], dtype=np.int64)}
        )
        return float(loss[0]), grad.reshape(-1).astype(np.float64)


def distortion(a, b):
    r = a - b
    return math.sqrt(float(r @ r) / r.size)


def attack(model, x0, target, o):
    n = x0.size
    bounds = [(0.0, 1.0)] * n
    current = x0.copy()
    c, failed, succeeded, best = o["c_max"], None, None, None
    iterations = evaluations = 0
    for _ in range(o["steps"]):
        weight = c

        def objective(x):
            loss, grad = model.loss_and_grad(x, target)
            r = x - x0
            return weight * loss + float(r @ r), weight * grad + 2.0 * r

        x, _, info = fmin_l_bfgs_b(
            objective,
            current,
            bounds=bounds,
            m=o["memory"],
            factr=o["factr"],
            pgtol=o["pgtol"],
            maxiter=o["max_iterations"],
            maxfun=o["max_evaluations"],
        )
        iterations += info["nit"]
        evaluations += info["funcalls"]
        if model.predict(x) == target:
            d = distortion(x, x0)
            if best is None or d < best[1]:
                best = (x.copy(), d, c)
            succeeded = c
        else:
            failed = c
        current = x
        if succeeded is None:
            break
        c = max(math.sqrt(succeeded * o["c_min"]), o["c_min"]) if failed is None else math.sqrt(failed * succeeded)
        if succeeded <= o["c_min"]:
            break
    record = {"success": best is not None, "iterations": iterations, "evaluations": evaluations}
    if best is None:
        record.update(distortion=distortion(current, x0), c=failed)
        return record
    lo, hi = 0.0, 1.0
    r = best[0] - x0
    for _ in range(o["shrink_steps"]):
        mid = (lo + hi) / 2.0
        if model.predict(x0 + mid * r) == target:
            hi = mid
        else:
            lo = mid
    record.update(distortion=distortion(x0 + hi * r, x0), c=best[2])
    return record


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="the forward ONNX model")
    p.add_argument("--backward", required=True, help="its exported xent backward graph")
    p.add_argument("--pairs", required=True, help="JSON: shape, labels, targets, options")
    p.add_argument("--images", required=True, help="the images, little-endian float32")
    p.add_argument("--threads", type=int, required=True, help="ONNX Runtime intra-op threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with open(args.pairs) as f:
        pairs = json.load(f)
    shape, targets, o = pairs["shape"], pairs["targets"], pairs["options"]
    images = np.fromfile(args.images, dtype="<f4").reshape(shape).astype(np.float64)
    model = Model(args.model, args.backward, args.threads, args.device, shape)
    records = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for i, target in enumerate(targets):
        records.append(attack(model, images[i].reshape(-1), int(target), o))
        if (i + 1) % 100 == 0:
            print(f"lbfgs_scipy: {i + 1}/{len(targets)} examples", file=sys.stderr, flush=True)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    result = {
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "examples": records,
        "threads": args.threads,
        "versions": {
            "python": platform.python_version(),
            "scipy": scipy.__version__,
            "numpy": np.__version__,
            "onnxruntime": ort.__version__,
        },
    }
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
