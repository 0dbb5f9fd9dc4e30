"""Trains the two models of notebooks/own-model.advx on coloured
Fashion-MNIST (colour.py) with PyTorch and exports them with
torch.onnx.export (TorchScript mode, opset 13), as a researcher would:

- fashion_resnet.onnx: an RGB CNN with BatchNorm and a residual block,
  flattened with x.view(x.size(0), -1);
- fashion_cnn.onnx: a plain CNN, a second model to transfer attacks to.

Both take inputs normalised outside the graph, (x - MEAN) / STD per channel
on pixels x in [0, 1]: the script declares MEAN and STD when it loads them.
Run once with Debian's python3-torch (not in CI; the models are committed):

    python3 models/own/train.py
"""

import os

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from colour import coloured

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCHS = 2
# Training images used: enough for about 10% test error in minutes on two cores.
TRAIN = 30000


class ResidualCNN(nn.Module):
    def __init__(self, width=12):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(width)
        self.conv4 = nn.Conv2d(width, 2 * width, 3, padding=1, bias=False)
        self.bn4 = nn.BatchNorm2d(2 * width)
        self.fc = nn.Linear(2 * width * 8 * 8, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        y = F.relu(self.bn2(self.conv2(x)))
        x = F.relu(x + self.bn3(self.conv3(y)))
        x = F.max_pool2d(F.relu(self.bn4(self.conv4(x))), 2)
        return self.fc(x.view(x.size(0), -1))


class PlainCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 12, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(12, 24, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(24 * 8 * 8, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.classifier(torch.flatten(self.features(x), 1))


def tensors(split, count=None):
    images, labels = coloured(split, count)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).contiguous().float() / 255
    return x, torch.from_numpy(labels.astype(np.int64))


def train(model, x, y, mean, std, seed):
    torch.manual_seed(seed)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    for epoch in range(EPOCHS):
        model.train()
        order = torch.randperm(len(x))
        for start in range(0, len(x), 128):
            batch = order[start:start + 128]
            loss = F.cross_entropy(model((x[batch] - mean) / std), y[batch])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
        print(f"  epoch {epoch + 1}: last batch loss {loss.item():.3f}", flush=True)
    return model.eval()


def error(model, x, y, mean, std):
    with torch.no_grad():
        predicted = torch.cat([model((x[s:s + 1000] - mean) / std).argmax(1) for s in range(0, len(x), 1000)])
    return (predicted != y).float().mean().item()


def main():
    torch.set_num_threads(2)
    x, y = tensors("train", TRAIN)
    tx, ty = tensors("test")
    # Rounded as the script declares them, so that training and advx normalise alike.
    mean = x.mean(dim=(0, 2, 3), keepdim=True).mul(1000).round().div(1000)
    std = x.std(dim=(0, 2, 3), keepdim=True).mul(1000).round().div(1000)
    print("mean:", mean.flatten().tolist(), "std:", std.flatten().tolist(), flush=True)
    for name, make, seed in [("fashion_resnet", ResidualCNN, 0), ("fashion_cnn", PlainCNN, 1)]:
        torch.manual_seed(seed)
        model = train(make(), x, y, mean, std, seed)
        print(f"{name}: test error {error(model, tx, ty, mean, std):.4f}", flush=True)
        torch.onnx.export(
            model, torch.rand(1, 3, 32, 32), os.path.join(HERE, f"{name}.onnx"), opset_version=13,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=True)


if __name__ == "__main__":
    main()
