"""Writes the seed models of the `onnx` fuzz target into seeds-onnx/.

Small, valid models (onnx.checker with full_check, and ONNX Runtime loads
each) that together use every op advx differentiates, the attributes that
change their geometry, Constant nodes, optional inputs and outputs, and
opsets from 13 to 28. The fuzzer's mutator changes them; a valid start
means most mutants reach deep into validation and export.

Run from fuzz/: ../.venv/bin/python make_onnx_seeds.py
"""

import os

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "seeds-onnx")
RNG = np.random.default_rng(17)


def weight(name, *dims):
    return numpy_helper.from_array((RNG.standard_normal(dims) * 0.3).astype(np.float32), name)


def ints(name, values):
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def io(name, dims, elem=T.FLOAT):
    return h.make_tensor_value_info(name, elem, dims)


def model(name, nodes, inputs, outputs, inits, opset=17):
    graph = h.make_graph(nodes, name, inputs, outputs, inits)
    m = h.make_model(graph, opset_imports=[h.make_opsetid("", opset)], producer_name="advx-fuzz-seeds")
    m.ir_version = 8
    return m


def softmax_regression():
    return model(
        "softmax_regression",
        [
            h.make_node("Flatten", ["x"], ["flat"], name="flatten", axis=1),
            h.make_node("Gemm", ["flat", "w", "b"], ["logits"], name="fc", transB=1),
            h.make_node("Softmax", ["logits"], ["probs"], name="softmax", axis=1),
        ],
        [io("x", ["N", 1, 4, 4])],
        [io("probs", ["N", 3])],
        [weight("w", 3, 16), weight("b", 3)],
    )


def mlp():
    return model(
        "mlp",
        [
            h.make_node("Flatten", ["x"], ["flat"], name="flatten"),
            h.make_node("Gemm", ["flat", "w1", "b1"], ["h1"], name="fc1", alpha=0.5, beta=2.0),
            h.make_node("Sigmoid", ["h1"], ["a1"], name="sigmoid"),
            h.make_node("MatMul", ["a1", "w2"], ["h2"], name="fc2"),
            h.make_node("Add", ["h2", "b2"], ["z2"], name="bias2"),
            h.make_node("Tanh", ["z2"], ["a2"], name="tanh"),
            h.make_node("Gemm", ["a2", "w3"], ["logits"], name="fc3", transA=0, transB=1),
            h.make_node("LogSoftmax", ["logits"], ["out"], name="logsoftmax", axis=-1),
        ],
        [io("x", ["batch", 1, 4, 4])],
        [io("out", ["batch", 4])],
        [weight("w1", 16, 8), weight("b1", 8), weight("w2", 8, 6), weight("b2", 6), weight("w3", 4, 6)],
    )


def conv_net():
    return model(
        "conv_net",
        [
            h.make_node("Conv", ["x", "c1", "cb1"], ["y1"], name="conv1", pads=[1, 1, 1, 1], strides=[1, 1]),
            h.make_node("Relu", ["y1"], ["r1"], name="relu1"),
            h.make_node("MaxPool", ["r1"], ["p1"], name="pool1", kernel_shape=[2, 2], strides=[2, 2]),
            h.make_node("Conv", ["p1", "c2"], ["y2"], name="conv2", group=2, kernel_shape=[3, 3],
                        pads=[1, 0, 1, 0], dilations=[1, 1]),
            h.make_node("AveragePool", ["y2"], ["p2"], name="pool2", kernel_shape=[2, 2], strides=[2, 2],
                        ceil_mode=1, count_include_pad=0),
            h.make_node("MaxPool", ["p2"], ["p3", "idx"], name="pool3", kernel_shape=[1, 1],
                        auto_pad="SAME_UPPER"),
            h.make_node("GlobalAveragePool", ["p3"], ["g"], name="gap"),
            h.make_node("Flatten", ["g"], ["flat"], name="flatten"),
            h.make_node("Gemm", ["flat", "w", "b"], ["scores"], name="fc", transB=1),
        ],
        [io("x", ["N", 2, 8, 8])],
        [io("scores", ["N", 3])],
        [weight("c1", 4, 2, 3, 3), weight("cb1", 4), weight("c2", 4, 2, 3, 3), weight("w", 3, 4), weight("b", 3)],
    )


def shapes_and_norms():
    """Reshape, Concat, Transpose, BatchNormalization, LRN, Clip, Dropout,
    reductions, Identity and the elementwise ops, with Constant nodes."""
    return model(
        "shapes_and_norms",
        [
            h.make_node("Conv", ["x", "cw"], ["c"], name="conv", kernel_shape=[1, 1]),
            h.make_node("BatchNormalization", ["c", "scale", "bias", "mean", "var"], ["n"], name="bn",
                        epsilon=1e-3),
            h.make_node("LRN", ["n"], ["l"], name="lrn", size=3, alpha=1e-3, beta=0.75, bias=1.0),
            h.make_node("Constant", [], ["shape"], name="shape_const", value_ints=[0, 3, 8]),
            h.make_node("Reshape", ["l", "shape"], ["r"], name="reshape"),
            h.make_node("Transpose", ["r"], ["t"], name="transpose", perm=[0, 2, 1]),
            h.make_node("Reshape", ["t", "back"], ["rb"], name="reshape_back"),
            h.make_node("Concat", ["r", "rb"], ["cat"], name="concat", axis=1),
            h.make_node("Constant", [], ["lo"], name="lo_const", value_float=-1.0),
            h.make_node("Clip", ["cat", "lo", ""], ["clipped"], name="clip"),
            h.make_node("Dropout", ["clipped", "ratio", "training"], ["d"], name="dropout"),
            h.make_node("ReduceSum", ["d", "axes"], ["s"], name="sum", keepdims=0),
            h.make_node("Exp", ["s"], ["e"], name="exp"),
            h.make_node("Log", ["e"], ["lg"], name="log"),
            h.make_node("Neg", ["lg"], ["ng"], name="neg"),
            h.make_node("Mul", ["ng", "k"], ["m"], name="mul"),
            h.make_node("Div", ["m", "k"], ["dv"], name="div"),
            h.make_node("Sub", ["dv", "k"], ["sb"], name="sub"),
            h.make_node("ReduceMean", ["sb"], ["mean_out"], name="mean", axes=[1], keepdims=1),
            h.make_node("Identity", ["mean_out"], ["out"], name="identity"),
        ],
        [io("x", ["N", 2, 2, 4])],
        [io("out", ["N", 1])],
        [
            weight("cw", 3, 2, 1, 1),
            weight("scale", 3), weight("bias", 3), weight("mean", 3),
            numpy_helper.from_array(np.abs(RNG.standard_normal(3)).astype(np.float32) + 0.5, "var"),
            ints("back", [0, 3, 8]),
            numpy_helper.from_array(np.array(0.5, dtype=np.float32), "ratio"),
            numpy_helper.from_array(np.array(False), "training"),
            ints("axes", [1]),
            weight("k", 8),
        ],
    )


def autoencoder():
    """An output with as many values as the input, for the reconstruction objectives."""
    return model(
        "autoencoder",
        [
            h.make_node("Flatten", ["x"], ["flat"], name="flatten"),
            h.make_node("Gemm", ["flat", "we", "be"], ["code_in"], name="encode", transB=1),
            h.make_node("Sigmoid", ["code_in"], ["code"], name="code"),
            h.make_node("Gemm", ["code", "wd", "bd"], ["rec_in"], name="decode", transB=1),
            h.make_node("Sigmoid", ["rec_in"], ["rec"], name="reconstruction"),
        ],
        [io("x", ["N", 1, 4, 4])],
        [io("rec", ["N", 16])],
        [weight("we", 5, 16), weight("be", 5), weight("wd", 16, 5), weight("bd", 16)],
    )


def opset_19():
    """ReduceMean's axes as an input (opset 18) and a dilated AveragePool (19)."""
    return model(
        "opset_19",
        [
            h.make_node("AveragePool", ["x"], ["p"], name="pool", kernel_shape=[2, 2], dilations=[2, 2],
                        pads=[1, 1, 0, 0]),
            h.make_node("ReduceMean", ["p", "axes"], ["m"], name="mean", keepdims=0),
            h.make_node("Reshape", ["m", "shape"], ["out"], name="flat", allowzero=0),
        ],
        [io("x", ["N", 2, 6, 6])],
        [io("out", ["N", 25])],
        [ints("axes", [1]), ints("shape", [-1, 25])],
        opset=19,
    )


def opset_28():
    return model(
        "opset_28",
        [
            h.make_node("MatMul", ["x", "w"], ["y"], name="matmul"),
            h.make_node("Relu", ["y"], ["r"], name="relu"),
            h.make_node("Softmax", ["r"], ["out"], name="softmax"),
        ],
        [io("x", ["N", 3])],
        [io("out", ["N", 4])],
        [weight("w", 3, 4)],
        opset=28,
    )


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = [softmax_regression, mlp, conv_net, shapes_and_norms, autoencoder, opset_19, opset_28]
    for make in seeds:
        m = make()
        onnx.checker.check_model(m, full_check=True)
        ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        path = os.path.join(OUT, make.__name__ + ".onnx")
        onnx.save(m, path)
        print(f"{path}: {os.path.getsize(path)} bytes")


if __name__ == "__main__":
    main()
