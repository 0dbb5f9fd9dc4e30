"""Exports torchvision's AlexNet, VGG-11, ResNet-18 and MobileNetV2 (ImageNet
size, 224x224, 1000 classes) to ONNX as a user would, then strips the
weights: `<name>.graph.onnx` keeps every node and every initializer's name,
type and shape, and `make.py` fills the weights with torchvision's own
initialisation, seeded, so that the 300 MB of random weights need not be
committed. Run once with Debian's torch 1.13 (see models/fixtures/README.md):

    /work/torchvenv/bin/python models/zoo/export.py
"""
import io
import sys
from pathlib import Path

import onnx
import torch
import torchvision

HERE = Path(__file__).resolve().parent
MODELS = {
    "alexnet": torchvision.models.alexnet,
    "vgg11": torchvision.models.vgg11,
    "resnet18": torchvision.models.resnet18,
    "mobilenet_v2": torchvision.models.mobilenet_v2,
}


def export(name):
    torch.manual_seed(0)
    model = MODELS[name]().eval()
    buffer = io.BytesIO()
    torch.onnx.export(model, torch.zeros(1, 3, 224, 224), buffer, opset_version=13,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load_from_string(buffer.getvalue())
    for tensor in proto.graph.initializer:
        if tensor.data_type == onnx.TensorProto.FLOAT and len(tensor.dims) >= 1:
            tensor.ClearField("raw_data")
            del tensor.float_data[:]
    proto.doc_string = f"torchvision {torchvision.__version__} {name}, exported by torch {torch.__version__}; " \
                       "weights stripped (models/zoo/make.py fills them)"
    onnx.save(proto, HERE / f"{name}.graph.onnx")
    print(name, (HERE / f"{name}.graph.onnx").stat().st_size, "bytes")


if __name__ == "__main__":
    for name in sys.argv[1:] or MODELS:
        export(name)
