#!/usr/bin/env python3
"""The reference minimum-norm attacks of `advx bench --only optimality`.

On the (image, target) pairs advx attacked, each of these attacks runs as
its library implements it, on the CPU, on the forward ONNX model evaluated
by PyTorch (`lbfgs_torch.OnnxNet`, checked against the exported xent
backward graph):

- `ddn`: Decoupled Direction and Norm (adv-lib 0.2.8), continuous pixels;
- `alma`: the Augmented Lagrangian Method for Adversarial attacks (adv-lib);
- `fmn`: Fast Minimum-Norm, L2 (adv-lib);
- `cw`: Carlini and Wagner's L2 attack (advertorch 0.2.3), 9 binary steps;
- `lbfgs`: advertorch's `LBFGSAttack` (the paper's attack as PyTorch users
  run it), one example at a time, its fastest setting.

Every attack is targeted. Each example's outcome is checked here, the same
way for all: the adversarial image must lie in [0, 1] and the model must
give it the target; its distortion is the paper's sqrt(sum r^2 / n).
Only the attacks are timed.

Input as `lbfgs_torch.py` (`--pairs` JSON with shape, targets and options:
`attacks`, the list to run, `steps`, `batch`, and `limits`, the examples
an attack takes at most, the first ones; `--images` little-endian f32).
Output: JSON with, per attack, the seconds, the settings, and per example
the success and distortion.
"""

import argparse
import json
import math
import os
import platform
import sys
import time
import types

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from lbfgs_torch import OnnxNet, check_against_backward_graph  # noqa: E402


def import_peers():
    """adv-lib imports visdom only for its plots; advertorch imports a helper torch 1.13 no longer has."""
    if "visdom" not in sys.modules:
        sys.modules["visdom"] = types.ModuleType("visdom")
        sys.modules["visdom"].Visdom = object
    import importlib

    # `torch.autograd.gradcheck` is also a function's name: take the module itself.
    gradcheck = importlib.import_module("torch.autograd.gradcheck")
    if not hasattr(gradcheck, "zero_gradients"):

        def zero_gradients(x):
            if isinstance(x, torch.Tensor) and x.grad is not None:
                x.grad.detach_()
                x.grad.zero_()

        gradcheck.zero_gradients = zero_gradients
    from adv_lib.attacks import alma, ddn, fmn
    from advertorch.attacks import CarliniWagnerL2Attack, LBFGSAttack

    return {"ddn": ddn, "alma": alma, "fmn": fmn, "cw": CarliniWagnerL2Attack, "lbfgs": LBFGSAttack}


class Module(torch.nn.Module):
    """The ONNX network as the nn.Module the libraries expect."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x)


def run_attack(name, peers, model, x, t, classes, steps):
    """The adversarial images of one attack for a batch, and its settings."""
    if name == "ddn":
        return peers["ddn"](model, x, t, targeted=True, steps=steps, levels=None), {"steps": steps, "levels": None}
    if name == "alma":
        return peers["alma"](model, x, t, targeted=True, num_steps=steps, distance="l2"), {"num_steps": steps}
    if name == "fmn":
        return peers["fmn"](model, x, t, norm=2, targeted=True, steps=steps), {"steps": steps, "norm": 2}
    if name == "cw":
        settings = {"binary_search_steps": 9, "max_iterations": steps, "learning_rate": 0.01, "initial_const": 1e-3}
        attack = peers["cw"](model, classes, targeted=True, **settings)
        return attack.perturb(x, t), settings
    if name == "lbfgs":
        settings = {"batch_size": 1, "binary_search_steps": 9, "max_iterations": 100, "initial_const": 1e-2}
        attack = peers["lbfgs"](model, classes, targeted=True, **settings)
        return torch.cat([attack.perturb(x[i : i + 1], t[i : i + 1]) for i in range(len(x))]), settings
    sys.exit(f"minnorm_torch.py: unknown attack {name}")


def outcomes(model, originals, adversarial, targets):
    with torch.no_grad():
        predicted = model(adversarial).argmax(1)
    records = []
    for a, x, t, p in zip(adversarial, originals, targets, predicted):
        a64, x64 = a.double().flatten(), x.double().flatten()
        in_box = bool(((a64 >= 0) & (a64 <= 1)).all())
        finite = bool(torch.isfinite(a64).all())
        r = a64 - x64
        d = math.sqrt(float(r @ r) / r.numel()) if finite else float("nan")
        records.append({"success": finite and in_box and int(p) == int(t), "distortion": d})
    return records


def loaded_blas():
    """The BLAS library torch runs on (the reference BLAS makes the peers slow)."""
    try:
        with open("/proc/self/maps") as f:
            paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
        return sorted(paths)
    except OSError:
        return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", required=True)
    p.add_argument("--backward", required=True)
    p.add_argument("--pairs", required=True)
    p.add_argument("--images", required=True)
    p.add_argument("--threads", type=int, required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    with open(args.pairs) as f:
        pairs = json.load(f)
    shape, o = pairs["shape"], pairs["options"]
    targets = torch.as_tensor(pairs["targets"], dtype=torch.int64)
    images_np = np.fromfile(args.images, dtype="<f4").reshape(shape)
    torch.set_num_threads(args.threads)
    # advx's sessions treat subnormal numbers as zero (they are slow on x86);
    # so do the peers', so that neither side is timed on them.
    torch.set_flush_denormal(True)
    torch.manual_seed(0)
    device = torch.device("cpu")
    net = OnnxNet(args.model, device)
    check_against_backward_graph(net, args.backward, images_np.astype(np.float64), targets.numpy(), device)
    model = Module(net).eval()
    images = torch.from_numpy(images_np.copy())
    with torch.no_grad():
        classes = int(model(images[:1]).shape[1])
    peers = import_peers()
    batch = int(o.get("batch", len(targets)))
    results = {}
    for name in o["attacks"]:
        steps = int(o["steps"])
        limit = int(o.get("limits", {}).get(name, len(targets)))
        records, started, cpu_started, settings = [], time.perf_counter(), time.process_time(), None
        for first in range(0, limit, batch):
            last = min(first + batch, limit)
            x, t = images[first:last], targets[first:last]
            adversarial, settings = run_attack(name, peers, model, x, t, classes, steps)
            records += outcomes(model, x, adversarial.detach(), t)
        seconds, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        ok = [r["distortion"] for r in records if r["success"]]
        print(
            f"minnorm_torch: {name}: {len(records)} examples in {seconds:.1f} s, "
            f"{len(ok)} successes, mean distortion {np.mean(ok) if ok else float('nan'):.5f}",
            file=sys.stderr,
            flush=True,
        )
        results[name] = {"seconds": seconds, "cpu_seconds": cpu, "settings": settings, "examples": records}
    versions = {"python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    for package in ("adv-lib", "advertorch"):
        try:
            from importlib.metadata import version

            versions[package] = version(package)
        except Exception:
            versions[package] = None
    versions["blas"] = loaded_blas()
    with open(args.out, "w") as f:
        json.dump({"threads": args.threads, "attacks": results, "versions": versions}, f)


if __name__ == "__main__":
    main()
