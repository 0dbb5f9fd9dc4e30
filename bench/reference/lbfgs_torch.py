#!/usr/bin/env python3
"""The paper's attack written in PyTorch, the GPU peer of `advx bench`.

This is how advertorch's `LBFGSAttack` runs box-constrained L-BFGS on a
GPU: PyTorch computes the loss and its gradient for a whole batch on the
device, and scipy's L-BFGS-B (Fortran, on the CPU) minimises the sum of the
batch's objectives as one problem over the flattened batch. The search over
c around it is advx's (`src/attack/search.rs`), per example, as in
`lbfgs_scipy.py`:

- minimise sum_i c_i * xent(x'_i, target_i) + |x'_i - x_i|^2 over the box;
- after each step every example updates its own c (sqrt(c * c_min) after a
  success until a failure, then the geometric mean of the last failure and
  the last success); an example whose search has ended leaves the batch;
- each step starts from the previous step's solution and runs at most
  `max_iterations` L-BFGS-B iterations (memory m, pgtol, factr) on the
  joint problem;
- the least distorted success is shrunk by 10 bisection steps along
  x + t * r, batched.

The network is the forward ONNX model itself, run by PyTorch: its nodes
(Flatten, Gemm, Conv, MaxPool, Relu, Sigmoid, Identity) become torch
operations. The loss is cross-entropy on its scores, checked at start
against the exported xent backward graph (the one advx and the scipy
reference differentiate) when onnxruntime is importable.

Input and output as `lbfgs_scipy.py` (the pairs' options add `batch`);
the output also names the method. Only the attack loop is timed.
"""

import argparse
import json
import math
import platform
import sys
import time

import numpy as np
import onnx
import scipy
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from scipy.optimize import Bounds, minimize


class OnnxNet:
    """A forward ONNX graph of the supported ops, evaluated with torch."""

    def __init__(self, path, device):
        model = onnx.load(path)
        graph = model.graph
        self.device = device
        self.weights = {
            t.name: torch.from_numpy(numpy_helper.to_array(t).copy()).to(device) for t in graph.initializer
        }
        self.input = [i.name for i in graph.input if i.name not in self.weights][0]
        self.output = graph.output[0].name
        self.nodes = list(graph.node)
        for node in self.nodes:
            if node.op_type not in OPS:
                sys.exit(f"lbfgs_torch.py: {path}: op {node.op_type} ({node.name}) has no torch counterpart here")

    def __call__(self, x):
        values = dict(self.weights)
        values[self.input] = x
        for node in self.nodes:
            attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
            args = [values[name] if name else None for name in node.input]
            values[node.output[0]] = OPS[node.op_type](args, attrs)
        return values[self.output]


def gemm(args, attrs):
    a, b = args[0], args[1]
    if attrs.get("transA", 0):
        a = a.t()
    if attrs.get("transB", 0):
        b = b.t()
    y = attrs.get("alpha", 1.0) * (a @ b)
    if len(args) > 2 and args[2] is not None:
        y = y + attrs.get("beta", 1.0) * args[2]
    return y


def symmetric_pads(attrs, rank):
    pads = list(attrs.get("pads", [0] * (2 * rank)))
    if pads[:rank] != pads[rank:]:
        sys.exit(f"lbfgs_torch.py: asymmetric pads {pads} are not supported")
    return pads[:rank]


def conv(args, attrs):
    x, w = args[0], args[1]
    bias = args[2] if len(args) > 2 else None
    rank = w.dim() - 2
    return F.conv2d(
        x,
        w,
        bias,
        stride=attrs.get("strides", [1] * rank),
        padding=symmetric_pads(attrs, rank),
        dilation=attrs.get("dilations", [1] * rank),
        groups=attrs.get("group", 1),
    )


def max_pool(args, attrs):
    kernel = attrs["kernel_shape"]
    return F.max_pool2d(
        args[0], kernel, stride=attrs.get("strides", kernel), padding=symmetric_pads(attrs, len(kernel))
    )


OPS = {
    "Flatten": lambda a, at: a[0].flatten(at.get("axis", 1)),
    "Gemm": gemm,
    "MatMul": lambda a, at: a[0] @ a[1],
    "Add": lambda a, at: a[0] + a[1],
    "Relu": lambda a, at: torch.relu(a[0]),
    "Sigmoid": lambda a, at: torch.sigmoid(a[0]),
    "Tanh": lambda a, at: torch.tanh(a[0]),
    "Identity": lambda a, at: a[0],
    "Conv": conv,
    "MaxPool": max_pool,
}


def check_against_backward_graph(net, backward, images, targets, device):
    """Fails when torch's loss or gradient disagrees with the exported graph."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("lbfgs_torch: onnxruntime not importable; loss not checked against the backward graph", file=sys.stderr)
        return
    session = ort.InferenceSession(backward, providers=["CPUExecutionProvider"])
    image = [i.name for i in session.get_inputs() if i.name != "target"][0]
    x = images[:8].astype(np.float32)
    t = np.asarray(targets[:8], dtype=np.int64)
    loss, grad = session.run(["loss", "grad." + image], {image: x, "target": t})
    ours_loss, ours_grad = loss_and_grad(net, torch.from_numpy(x).to(device), torch.from_numpy(t).to(device))
    dl = float(np.max(np.abs(ours_loss.cpu().numpy() - loss)))
    dg = float(np.max(np.abs(ours_grad.cpu().numpy() - grad)))
    scale = max(float(np.max(np.abs(grad))), 1e-6)
    print(f"lbfgs_torch: against {backward}: max |Δloss| {dl:.2e}, max |Δgrad| {dg:.2e} (of {scale:.2e})", file=sys.stderr)
    if dl > 1e-3 or dg > 1e-3 * scale:
        sys.exit("lbfgs_torch.py: torch's loss or gradient differs from the exported backward graph")


def loss_and_grad(net, x, targets):
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(net(x), targets, reduction="none")
    (grad,) = torch.autograd.grad(loss.sum(), x)
    return loss.detach(), grad


def predict(net, x, chunk=10000):
    with torch.no_grad():
        return torch.cat([net(x[i : i + chunk]).argmax(1) for i in range(0, len(x), chunk)])


def distortion(a, b):
    r = a - b
    return math.sqrt(float(r @ r) / r.size)


class Searches:
    """Every example's search over c, advanced one step for the batch at a time."""

    def __init__(self, originals, targets, o):
        n = len(targets)
        self.o = o
        self.originals, self.targets = originals, targets
        self.current = originals.copy()
        self.c = np.full(n, o["c_max"])
        self.failed = [None] * n
        self.succeeded = [None] * n
        self.best = [None] * n
        self.done = np.zeros(n, dtype=bool)
        self.iterations = np.zeros(n, dtype=np.int64)
        self.evaluations = np.zeros(n, dtype=np.int64)

    def record(self, i, x, reached):
        o = self.o
        c = self.c[i]
        if reached:
            d = distortion(x, self.originals[i])
            if self.best[i] is None or d < self.best[i][1]:
                self.best[i] = (x.copy(), d, c)
            self.succeeded[i] = c
        else:
            self.failed[i] = c
        self.current[i] = x
        s, f = self.succeeded[i], self.failed[i]
        if s is None or s <= o["c_min"]:
            self.done[i] = True
        else:
            self.c[i] = max(math.sqrt(s * o["c_min"]), o["c_min"]) if f is None else math.sqrt(f * s)


def solve_step(net, searches, active, shape, device):
    o = searches.o
    x0 = searches.originals[active]
    weights = torch.from_numpy(searches.c[active]).to(device, torch.float32)
    targets = torch.from_numpy(searches.targets[active]).to(device)
    flat_x0 = x0.reshape(-1)
    batch_shape = (len(active),) + tuple(shape[1:])

    def objective(flat):
        x = torch.from_numpy(flat.reshape(batch_shape)).to(device, torch.float32)
        loss, grad = loss_and_grad(net, x, targets)
        r = flat - flat_x0
        f = float((weights * loss).sum()) + float(r @ r)
        g = (weights.view(-1, *([1] * (len(batch_shape) - 1))) * grad).double().cpu().numpy().reshape(-1)
        return f, g + 2.0 * r

    result = minimize(
        objective,
        searches.current[active].reshape(-1),
        jac=True,
        method="L-BFGS-B",
        bounds=Bounds(0.0, 1.0),
        options={
            "maxcor": o["memory"],
            "ftol": o["factr"] * np.finfo(float).eps,
            "gtol": o["pgtol"],
            "maxiter": o["max_iterations"],
            "maxfun": o["max_evaluations"],
        },
    )
    searches.iterations[active] += result.nit
    searches.evaluations[active] += result.nfev
    return result.x.reshape(len(active), -1)


def attack(net, images, targets, o, device):
    shape = images.shape
    originals = images.reshape(len(images), -1)
    searches = Searches(originals, targets, o)
    for _ in range(o["steps"]):
        active = np.flatnonzero(~searches.done)
        if len(active) == 0:
            break
        solutions = solve_step(net, searches, active, shape, device)
        x = torch.from_numpy(solutions.reshape((len(active),) + tuple(shape[1:]))).to(device, torch.float32)
        reached = (predict(net, x).cpu().numpy() == targets[active]).tolist()
        for i, solution, ok in zip(active, solutions, reached):
            searches.record(i, solution, ok)
    return shrink(net, searches, shape, device)


def shrink(net, searches, shape, device):
    """Bisects every success along x + t * r to the least t that still reaches the target."""
    o = searches.o
    found = [i for i, b in enumerate(searches.best) if b is not None]
    lo, hi = np.zeros(len(found)), np.ones(len(found))
    x0 = searches.originals[found]
    r = np.array([searches.best[i][0] for i in found]).reshape(len(found), -1) - x0
    for _ in range(o["shrink_steps"]):
        if not found:
            break
        mid = (lo + hi) / 2.0
        x = torch.from_numpy((x0 + mid[:, None] * r).reshape((len(found),) + tuple(shape[1:]))).to(
            device, torch.float32
        )
        reached = predict(net, x).cpu().numpy() == searches.targets[found]
        hi = np.where(reached, mid, hi)
        lo = np.where(reached, lo, mid)
    records = []
    for i in range(len(searches.targets)):
        record = {
            "success": searches.best[i] is not None,
            "iterations": int(searches.iterations[i]),
            "evaluations": int(searches.evaluations[i]),
        }
        if searches.best[i] is None:
            record.update(distortion=distortion(searches.current[i], searches.originals[i]), c=searches.failed[i])
        else:
            k = found.index(i)
            record.update(distortion=distortion(x0[k] + hi[k] * r[k], x0[k]), c=searches.best[i][2])
        records.append(record)
    return records


def torch_device(name):
    if name in ("cpu", "auto") and not (name == "auto" and torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        sys.exit(f"lbfgs_torch.py: --device {name}, but PyTorch sees no CUDA GPU")
    return torch.device("cuda:" + name.split(":")[1] if ":" in name else "cuda:0")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True, help="the forward ONNX model")
    p.add_argument("--backward", required=True, help="its exported xent backward graph (the loss is checked against it)")
    p.add_argument("--pairs", required=True, help="JSON: shape, labels, targets, options (with batch)")
    p.add_argument("--images", required=True, help="the images, little-endian float32")
    p.add_argument("--threads", type=int, required=True, help="PyTorch's CPU threads")
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with open(args.pairs) as f:
        pairs = json.load(f)
    shape, o = pairs["shape"], pairs["options"]
    targets = np.asarray(pairs["targets"], dtype=np.int64)
    images = np.fromfile(args.images, dtype="<f4").reshape(shape).astype(np.float64)
    torch.set_num_threads(args.threads)
    # Subnormal numbers as zero, as advx's sessions (they are slow on x86).
    torch.set_flush_denormal(True)
    # f32 products, as advx's sessions (its CUDA provider runs with TF32 off).
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    device = torch_device(args.device)
    net = OnnxNet(args.model, device)
    check_against_backward_graph(net, args.backward, images, targets, device)
    batch = int(o.get("batch", len(targets)))
    predict(net, torch.zeros((min(batch, len(targets)),) + tuple(shape[1:]), device=device))
    records = []
    started, cpu_started = time.perf_counter(), time.process_time()
    for first in range(0, len(targets), batch):
        chunk = slice(first, first + batch)
        records += attack(net, images[chunk], targets[chunk], o, device)
        print(f"lbfgs_torch: {len(records)}/{len(targets)} examples", file=sys.stderr, flush=True)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    result = {
        "method": f"pytorch peer ({device.type})",
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "examples": records,
        "threads": args.threads,
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "scipy": scipy.__version__,
            "numpy": np.__version__,
        },
    }
    with open(args.out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
