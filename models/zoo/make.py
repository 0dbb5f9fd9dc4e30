"""Makes the full-size torchvision models from their stripped exports:
`<name>.graph.onnx` (committed, made by export.py) -> `<name>.onnx` (about
14 to 530 MB, not committed), the weights drawn as torchvision initialises
them, from a fixed seed, so that every machine makes the same bytes:

- alexnet: PyTorch's default for Conv2d and Linear, U(-1/sqrt(fan_in), +1/sqrt(fan_in))
  for weights and biases (kaiming_uniform with a = sqrt(5));
- vgg11: convolutions N(0, 2/fan_out) (kaiming_normal, fan_out, relu), Linear N(0, 0.01^2),
  biases 0;
- resnet18: convolutions N(0, 2/fan_out), BatchNorm at its initial state (weight 1, bias 0,
  mean 0, var 1) folded into them by the exporter, so weights times 1/sqrt(1 + 1e-5) and
  biases 0; fc as PyTorch's default Linear;
- mobilenet_v2: as resnet18, and Linear N(0, 0.01^2) with bias 0.

Uniforms come from numpy's PCG64 bit stream (`Generator.random`), normals from
them by Box-Muller, so the values do not depend on numpy's sampling
algorithms. A model already made from the same graph and seed is kept.

    .venv/bin/python models/zoo/make.py [NAME...]
"""
import hashlib
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

HERE = Path(__file__).resolve().parent
SEED = 2014
BN_FOLD = 1.0 / np.sqrt(1.0 + 1e-5)
SCHEMES = {
    "alexnet": {"conv": "default", "linear": "default", "fold": 1.0},
    "vgg11": {"conv": "fan_out", "linear": "small", "fold": 1.0},
    "resnet18": {"conv": "fan_out", "linear": "default", "fold": BN_FOLD},
    "mobilenet_v2": {"conv": "fan_out", "linear": "small", "fold": BN_FOLD},
}


def uniform(rng, shape, bound):
    return (rng.random(shape) * 2.0 - 1.0) * bound


def normal(rng, shape, std):
    u1, u2 = 1.0 - rng.random(shape), rng.random(shape)
    return np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2) * std


def roles(graph):
    """Initializer name -> (op, slot, the weight's shape) for Conv and Gemm inputs."""
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    found = {}
    for node in graph.node:
        if node.op_type in ("Conv", "Gemm"):
            for slot, name in enumerate(node.input[:3]):
                found.setdefault(name, (node.op_type, slot, shapes.get(node.input[1])))
    return found


def value(rng, scheme, role, shape):
    op, slot, weight = role
    fan_in = int(np.prod(weight[1:]))
    if op == "Conv":
        fan_out = weight[0] * int(np.prod(weight[2:]))
        if scheme["conv"] == "default":
            return uniform(rng, shape, 1.0 / np.sqrt(fan_in))
        if slot == 1:
            return normal(rng, shape, np.sqrt(2.0 / fan_out)) * scheme["fold"]
        return np.zeros(shape)
    if scheme["linear"] == "default":
        return uniform(rng, shape, 1.0 / np.sqrt(fan_in))
    return normal(rng, shape, 0.01) if slot == 1 else np.zeros(shape)


def make(name):
    source = HERE / f"{name}.graph.onnx"
    target = HERE / f"{name}.onnx"
    stamp = f"advx models/zoo/make.py seed {SEED} graph sha256 {hashlib.sha256(source.read_bytes()).hexdigest()}"
    if target.exists() and onnx.load(target, load_external_data=False).doc_string.endswith(stamp):
        print(f"{target.name}: up to date")
        return
    model = onnx.load(source)
    rng = np.random.Generator(np.random.PCG64(SEED))
    found = roles(model.graph)
    for i, tensor in enumerate(model.graph.initializer):
        if tensor.data_type != onnx.TensorProto.FLOAT or tensor.raw_data or tensor.float_data:
            continue
        if tensor.name not in found:
            sys.exit(f"{source.name}: no rule for the weights '{tensor.name}'")
        array = value(rng, SCHEMES[name], found[tensor.name], list(tensor.dims)).astype(np.float32)
        model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, tensor.name))
    model.doc_string = f"{model.doc_string}; weights by {stamp}"
    onnx.checker.check_model(model, full_check=True)
    partial = target.with_suffix(".onnx.partial")
    onnx.save(model, partial)
    partial.replace(target)
    print(f"{target.name}: {target.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    for name in sys.argv[1:] or SCHEMES:
        make(name)
