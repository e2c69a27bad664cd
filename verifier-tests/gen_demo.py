#!/usr/bin/env python3
"""Generate robustcert's bundled SYNTHETIC dermatology demo (demo/).

Nothing here is real patient data. No real dermatology data set can be downloaded in our build
environment (DermaMNIST / HAM10000 sit behind a hub), so this script *draws* a small
dermoscopy-like data set and trains a small CNN on it:

* lesions follow the ABCD rule of dermoscopy: Asymmetry (elliptic stretch and an off-centre
  lobe), Border irregularity (random harmonics of the outline and edge blur), Colour
  variegation (a per-class palette mixed by a smooth random field) and Diameter;
* each of the 7 HAM10000 classes (akiec, bcc, bkl, df, mel, nv, vasc) has its own distribution
  of those features, plus a few class cues (bcc vessels and blue-grey nests, akiec scale,
  df central white patch, vasc lobules, bkl fissures);
* images are blended with a random other class's parameters (up to 45 %), so classes overlap
  and a small CNN reaches roughly 80-90 %, not 100 %;
* skin-toned backgrounds, hair, vignetting, illumination gradients and sensor noise;
* rendered at 112x112 and area-downsampled to 28x28 RGB uint8, like DermaMNIST.

Outputs (all under demo/, all deterministic; a second run rewrites identical files):

* demo/synthetic_dermamnist.npz  MedMNIST v2 `dermamnist.npz` layout: train/val/test _images
  (uint8 N x 28 x 28 x 3) and _labels (uint8 N x 1), plus `metadata_json` (UTF-8 JSON bytes as
  uint8) and `SYNTHETIC_DATA_NOTICE` (a numpy unicode string);
* demo/images/<class_name>/synthetic_test_XXXX.png  the first 64 test images (an image folder);
* demo/dermacnn.onnx  the trained CNN (opset 13, dynamic batch, input [N,3,28,28] in [0,1],
  normalisation inside the graph as Sub/Div by constants);
* demo/model_card.json, demo/README.md.

Usage (from the repository root; CPU only, about a minute):

    pip install torch onnx onnxruntime numpy
    python3 verifier-tests/gen_demo.py
"""

import json
import os
import shutil
import struct
import sys
import zlib

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = os.path.join(ROOT, "demo")
SCRIPT = "verifier-tests/gen_demo.py"

DATA_SEED = 20240607
TRAIN_SEED = 7
SIZES = {"train": 1100, "val": 200, "test": 300}  # about 1.9 kB per image compressed: ~3 MB in all
N_PNG = 64
SIGMA_AUG = 0.12
EPOCHS = 40
RENDER = 112  # render size; downsampled 4x to 28
OUT = 28
BLEND_MAX = 0.45  # how far an image's parameters move toward a random other class
SENSOR_NOISE = 0.5  # std of the per-pixel sensor noise (0-255 scale)

# Class order = label index, as in MedMNIST's DermaMNIST (alphabetical HAM10000 codes).
CLASSES = [
    ("akiec", "actinic keratoses"),
    ("bcc", "basal cell carcinoma"),
    ("bkl", "benign keratosis-like lesions"),
    ("df", "dermatofibroma"),
    ("mel", "melanoma"),
    ("nv", "melanocytic nevi"),
    ("vasc", "vascular lesions"),
]
# Class frequencies: imbalanced like HAM10000 (nv dominant), but much milder.
CLASS_WEIGHTS = np.array([0.12, 0.12, 0.15, 0.10, 0.16, 0.24, 0.11])

# Per-class ABCD distributions. Each range is (low, high) for a uniform draw.
#   diam: lesion radius as a fraction of the image side; asym: ellipse stretch; lobe: off-centre
#   lobe strength; border: amplitude of outline harmonics; blur: edge softness (pixels at 112);
#   palette: RGB colours (0-255) mixed by a smooth random field; ncol: how many palette colours
#   one lesion uses; opacity: how strongly the lesion covers the skin.
PARAMS = {
    "akiec": dict(diam=(0.20, 0.32), asym=(0.05, 0.30), lobe=(0.00, 0.20), border=(0.05, 0.12),
                  blur=(4.0, 7.0), ncol=(2, 3), opacity=(0.45, 0.70),
                  palette=[(205, 110, 105), (185, 85, 85), (225, 160, 140), (170, 100, 80)]),
    "bcc": dict(diam=(0.16, 0.28), asym=(0.05, 0.25), lobe=(0.05, 0.25), border=(0.03, 0.09),
                blur=(2.5, 5.0), ncol=(2, 3), opacity=(0.50, 0.75),
                palette=[(225, 175, 170), (205, 150, 150), (120, 125, 150), (235, 200, 190)]),
    "bkl": dict(diam=(0.20, 0.34), asym=(0.05, 0.30), lobe=(0.00, 0.20), border=(0.04, 0.10),
                blur=(1.5, 3.5), ncol=(2, 3), opacity=(0.65, 0.90),
                palette=[(160, 115, 75), (185, 140, 95), (135, 95, 60), (200, 165, 120)]),
    "df": dict(diam=(0.10, 0.18), asym=(0.00, 0.12), lobe=(0.00, 0.08), border=(0.01, 0.05),
               blur=(2.5, 4.5), ncol=(1, 2), opacity=(0.60, 0.85),
               palette=[(150, 100, 70), (170, 120, 85), (130, 85, 60)]),
    "mel": dict(diam=(0.22, 0.38), asym=(0.25, 0.55), lobe=(0.20, 0.50), border=(0.10, 0.22),
                blur=(1.0, 3.0), ncol=(3, 4), opacity=(0.80, 1.00),
                palette=[(60, 35, 25), (100, 60, 40), (30, 25, 30), (95, 100, 130), (140, 60, 55)]),
    "nv": dict(diam=(0.10, 0.22), asym=(0.00, 0.15), lobe=(0.00, 0.10), border=(0.00, 0.05),
               blur=(1.0, 2.5), ncol=(1, 2), opacity=(0.75, 0.95),
               palette=[(110, 70, 45), (130, 85, 55), (90, 55, 35)]),
    "vasc": dict(diam=(0.10, 0.22), asym=(0.00, 0.20), lobe=(0.00, 0.15), border=(0.02, 0.08),
                 blur=(1.0, 2.5), ncol=(2, 3), opacity=(0.80, 1.00),
                 palette=[(170, 30, 45), (120, 20, 50), (200, 60, 70), (90, 30, 70)]),
}
NUMERIC = ["diam", "asym", "lobe", "border", "blur", "opacity"]

# Skin tones (RGB), light to dark; one is picked and jittered per image.
SKIN = np.array([(236, 200, 180), (225, 185, 160), (210, 165, 135), (190, 145, 115), (165, 120, 90)], float)


def smooth_field(rng, n, scale):
    """A smooth random field in [0, 1]: a few random cosines."""
    y, x = np.mgrid[0:n, 0:n] / n
    f = np.zeros((n, n))
    for _ in range(4):
        kx, ky = rng.normal(0, scale, 2)
        f += np.cos(2 * np.pi * (kx * x + ky * y) + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.5, 1)
    f -= f.min()
    return f / max(f.max(), 1e-9)


def draw_curve(img, rng, pts, width, colour, alpha):
    """Paints a polyline (hair, vessel, fissure) with a soft edge."""
    n = img.shape[0]
    y, x = np.mgrid[0:n, 0:n].astype(float)
    d = np.full((n, n), 1e9)
    for (x0, y0), (x1, y1) in zip(pts[:-1], pts[1:]):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((x - x0) * dx + (y - y0) * dy) / max(dx * dx + dy * dy, 1e-9), 0, 1)
        d = np.minimum(d, np.hypot(x - x0 - t * dx, y - y0 - t * dy))
    a = alpha * np.clip(width / 2 + 0.5 - d, 0, 1)[..., None]
    img[:] = img * (1 - a) + np.asarray(colour, float) * a


def random_walk(rng, start, steps, step_len, turn):
    pts = [np.array(start, float)]
    ang = rng.uniform(0, 2 * np.pi)
    for _ in range(steps):
        ang += rng.normal(0, turn)
        pts.append(pts[-1] + step_len * np.array([np.cos(ang), np.sin(ang)]))
    return pts


def sample_params(rng, cls):
    """Draws one lesion's ABCD parameters: its class's, blended toward a random other class."""
    p = PARAMS[cls]
    v = {k: rng.uniform(*p[k]) for k in NUMERIC}
    other = CLASSES[rng.integers(len(CLASSES))][0]
    w = rng.uniform(0, BLEND_MAX)
    q = PARAMS[other]
    for k in NUMERIC:
        v[k] = (1 - w) * v[k] + w * rng.uniform(*q[k])
    ncol = int(rng.integers(p["ncol"][0], p["ncol"][1] + 1))
    idx = rng.choice(len(p["palette"]), size=min(ncol, len(p["palette"])), replace=False)
    cols = np.array([p["palette"][i] for i in idx], float)
    # Colour blending toward the other class's palette as well.
    oc = np.array(q["palette"][rng.integers(len(q["palette"]))], float)
    cols = (1 - w) * cols + w * oc
    cols += rng.normal(0, 12, cols.shape)
    v["colours"] = np.clip(cols, 0, 255)
    v["cls"] = cls
    v["w"] = w
    return v


def render(rng, cls):
    n = RENDER
    v = sample_params(rng, cls)
    # Skin background with an illumination gradient and mottling.
    tone = SKIN[rng.integers(len(SKIN))] + rng.normal(0, 8, 3)
    img = np.ones((n, n, 3)) * tone
    y, x = np.mgrid[0:n, 0:n].astype(float)
    gx, gy = rng.normal(0, 0.15, 2)
    img *= (1 + gx * (x / n - 0.5) + gy * (y / n - 0.5))[..., None]
    img *= (1 + 0.06 * (smooth_field(rng, n, 3) - 0.5))[..., None]

    # Lesion outline: r(theta) = R (1 + asymmetry terms + border harmonics).
    cx, cy = n / 2 + rng.normal(0, n * 0.05, 2)
    theta = np.arctan2(y - cy, x - cx)
    rr = np.hypot(x - cx, y - cy)
    R = v["diam"] * n
    phi = rng.uniform(0, 2 * np.pi)
    stretch = 1 + v["asym"] * np.cos(2 * (theta - phi))
    lobe = 1 + v["lobe"] * np.exp(-((np.angle(np.exp(1j * (theta - rng.uniform(0, 2 * np.pi))))) ** 2) / 0.5)
    border = np.zeros_like(theta)
    for k in range(3, 10):
        border += rng.normal(0, 1) * np.cos(k * theta + rng.uniform(0, 2 * np.pi)) / np.sqrt(k)
    radius = R * stretch * lobe * (1 + v["border"] * border)
    mask = 1 / (1 + np.exp(-(radius - rr) / max(v["blur"], 0.3)))

    # Colour variegation: palette colours mixed by smooth fields.
    cols = v["colours"]
    if len(cols) == 1:
        les = np.ones((n, n, 3)) * cols[0]
    else:
        weights = np.stack([smooth_field(rng, n, 2.5) ** 2 + 0.05 for _ in cols])
        weights /= weights.sum(0)
        les = np.einsum("kyx,kc->yxc", weights, cols)
    # Darker or lighter centre (pigment network density).
    centre = np.exp(-(rr / max(R, 1)) ** 2)
    les *= (1 + rng.uniform(-0.12, 0.08) * centre)[..., None]
    a = (mask * v["opacity"])[..., None]
    img = img * (1 - a) + les * a

    # Class cues.
    if cls == "bcc":  # arborizing vessels and blue-grey ovoid nests
        for _ in range(rng.integers(2, 5)):
            start = (cx + rng.normal(0, R * 0.4), cy + rng.normal(0, R * 0.4))
            draw_curve(img, rng, random_walk(rng, start, 6, R * 0.15, 0.6), 1.5, (185, 40, 55), 0.8)
        for _ in range(rng.integers(0, 3)):
            ox, oy = cx + rng.normal(0, R * 0.4), cy + rng.normal(0, R * 0.4)
            blob = np.exp(-((x - ox) ** 2 + (y - oy) ** 2) / (2 * (R * 0.12) ** 2))[..., None] * 0.7
            img = img * (1 - blob) + np.array([95, 105, 135.0]) * blob
    elif cls == "akiec":  # white-yellow scale
        for _ in range(rng.integers(4, 10)):
            ox, oy = cx + rng.normal(0, R * 0.5), cy + rng.normal(0, R * 0.5)
            blob = np.exp(-((x - ox) ** 2 + (y - oy) ** 2) / (2 * rng.uniform(2, 5) ** 2))[..., None] * 0.6
            img = img * (1 - blob) + np.array([240, 230, 210.0]) * blob
    elif cls == "df":  # central white scar-like patch
        blob = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * (R * 0.35) ** 2))[..., None] * rng.uniform(0.4, 0.8)
        img = img * (1 - blob) + np.array([235, 220, 205.0]) * blob
    elif cls == "vasc":  # red-purple lobules
        for _ in range(rng.integers(3, 7)):
            ox, oy = cx + rng.normal(0, R * 0.4), cy + rng.normal(0, R * 0.4)
            blob = np.exp(-((x - ox) ** 2 + (y - oy) ** 2) / (2 * (R * 0.2) ** 2))[..., None] * 0.6
            img = img * (1 - blob) + np.array([100, 15, 45.0]) * blob
    elif cls == "bkl":  # fissures / comedo-like openings
        for _ in range(rng.integers(2, 5)):
            start = (cx + rng.normal(0, R * 0.4), cy + rng.normal(0, R * 0.4))
            draw_curve(img, rng, random_walk(rng, start, 4, R * 0.18, 0.4), 1.2, (95, 65, 40), 0.6)
    elif cls == "mel":  # blue-white veil or regression area, sometimes
        if rng.uniform() < 0.6:
            ox, oy = cx + rng.normal(0, R * 0.3), cy + rng.normal(0, R * 0.3)
            blob = np.exp(-((x - ox) ** 2 + (y - oy) ** 2) / (2 * (R * 0.3) ** 2))[..., None] * 0.5
            img = img * (1 - blob) + np.array([140, 150, 175.0]) * blob

    # Hair (0-4 dark strands), vignetting, sensor noise.
    for _ in range(rng.choice(5, p=[0.4, 0.25, 0.15, 0.12, 0.08])):
        start = rng.uniform(0, n, 2)
        draw_curve(img, rng, random_walk(rng, start, 12, n / 10, 0.15), rng.uniform(1.0, 2.2),
                   rng.uniform(20, 60, 3), rng.uniform(0.6, 0.95))
    vig = rng.uniform(0.0, 0.5)
    img *= (1 - vig * np.clip((np.hypot(x - n / 2, y - n / 2) / (n / 2) - 0.7) / 0.5, 0, 1) ** 2)[..., None]
    small = img.reshape(OUT, n // OUT, OUT, n // OUT, 3).mean(axis=(1, 3))
    small += rng.normal(0, SENSOR_NOISE, small.shape)
    return np.clip(np.round(small), 0, 255).astype(np.uint8)


def make_split(rng, count):
    labels = rng.choice(len(CLASSES), size=count, p=CLASS_WEIGHTS / CLASS_WEIGHTS.sum())
    images = np.stack([render(rng, CLASSES[c][0]) for c in labels])
    return images, labels.astype(np.uint8).reshape(-1, 1)


def write_png(path, rgb):
    """A minimal deterministic PNG writer (8-bit RGB, no ancillary chunks)."""
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[r].tobytes() for r in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(png)


def train(data):
    import torch
    import torch.nn as nn

    torch.manual_seed(TRAIN_SEED)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    def to_t(imgs):
        return torch.from_numpy(imgs.astype(np.float32).transpose(0, 3, 1, 2) / 255.0)

    xtr, ytr = to_t(data["train_images"]), torch.from_numpy(data["train_labels"][:, 0].astype(np.int64))
    mean = xtr.mean(dim=(0, 2, 3)).numpy().round(4)
    std = xtr.std(dim=(0, 2, 3)).numpy().round(4)

    class DermaCNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).reshape(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).reshape(1, 3, 1, 1))
            self.body = nn.Sequential(
                nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(),
                nn.Conv2d(16, 32, 3, stride=2), nn.ReLU(),
                nn.Flatten(),
                nn.Linear(32 * 6 * 6, 64), nn.ReLU(),
                nn.Linear(64, len(CLASSES)))

        def forward(self, x):
            return self.body((x - self.mean) / self.std)

    model = DermaCNN()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, EPOCHS)
    gen = torch.Generator().manual_seed(TRAIN_SEED)
    n = xtr.shape[0]
    for epoch in range(EPOCHS):
        model.train()
        perm = torch.randperm(n, generator=gen)
        for s in range(0, n, 64):
            idx = perm[s:s + 64]
            xb = xtr[idx]
            # Dihedral augmentation (lesions have no orientation) and Gaussian noise for smoothing.
            k = int(torch.randint(4, (1,), generator=gen))
            xb = torch.rot90(xb, k, dims=(2, 3))
            if int(torch.randint(2, (1,), generator=gen)):
                xb = torch.flip(xb, dims=(3,))
            xb = xb + SIGMA_AUG * torch.randn(xb.shape, generator=gen)
            loss = nn.functional.cross_entropy(model(xb), ytr[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        sched.step()
    model.eval()

    def accuracy(split, sigma=0.0, reps=1):
        x, y = to_t(data[f"{split}_images"]), data[f"{split}_labels"][:, 0]
        g = torch.Generator().manual_seed(123)
        accs = []
        with torch.no_grad():
            for _ in range(reps):
                xn = x + sigma * torch.randn(x.shape, generator=g) if sigma > 0 else x
                accs.append(float((model(xn).argmax(1).numpy() == y).mean()))
        return float(np.mean(accs))

    metrics = {
        "train_accuracy": accuracy("train"),
        "val_accuracy": accuracy("val"),
        "test_accuracy": accuracy("test"),
        "test_accuracy_under_noise": {"sigma": SIGMA_AUG, "draws": 20, "accuracy": accuracy("test", SIGMA_AUG, 20)},
    }
    return model, mean, std, metrics


def export(model, data, path):
    import onnx
    import onnxruntime as ort
    import torch

    dummy = torch.zeros(1, 3, OUT, OUT)
    torch.onnx.export(model, (dummy,), path, dynamo=False, opset_version=13, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
    m = onnx.load(path)
    onnx.checker.check_model(m)
    ops = [n.op_type for n in m.graph.node]
    assert "Sub" in ops and "Div" in ops, ops
    x = data["test_images"].astype(np.float32).transpose(0, 3, 1, 2) / 255.0
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    ref = sess.run(None, {"input": x})[0]
    with torch.no_grad():
        out = model(torch.from_numpy(x)).numpy()
    err = float(np.abs(ref - out).max())
    assert err < 1e-4, err
    assert (ref.argmax(1) == out.argmax(1)).all()
    ort_acc = float((ref.argmax(1) == data["test_labels"][:, 0]).mean())
    return ops, err, ort_acc


def main():
    if os.path.isdir(DEMO):
        shutil.rmtree(DEMO)
    os.makedirs(DEMO)
    rng = np.random.default_rng(DATA_SEED)
    data = {}
    for split, count in SIZES.items():
        images, labels = make_split(rng, count)
        data[f"{split}_images"], data[f"{split}_labels"] = images, labels

    class_counts = {split: {CLASSES[c][0]: int((data[f"{split}_labels"] == c).sum()) for c in range(len(CLASSES))}
                    for split in SIZES}
    notice = ("SYNTHETIC DATA - NOT REAL PATIENT IMAGES. Procedurally drawn dermoscopy-like lesions "
              "(ABCD rule) made by robustcert's verifier-tests/gen_demo.py for demonstration and testing "
              "only; not for any clinical or research use.")
    metadata = {
        "name": "synthetic_dermamnist",
        "synthetic": True,
        "notice": notice,
        "layout": "MedMNIST v2 dermamnist.npz (train/val/test _images uint8 NxHxWxC, _labels uint8 Nx1)",
        "generator": SCRIPT,
        "seed": DATA_SEED,
        "image_shape": [OUT, OUT, 3],
        "class_names": [c[0] for c in CLASSES],
        "class_descriptions": [c[1] for c in CLASSES],
        "class_counts": class_counts,
    }
    np.savez_compressed(
        os.path.join(DEMO, "synthetic_dermamnist.npz"),
        **data,
        metadata_json=np.frombuffer(json.dumps(metadata, sort_keys=True).encode(), dtype=np.uint8),
        SYNTHETIC_DATA_NOTICE=np.array(notice),
    )
    # npz files embed zip timestamps; pin them so reruns are byte-identical.
    pin_zip_times(os.path.join(DEMO, "synthetic_dermamnist.npz"))

    for i in range(N_PNG):
        name = CLASSES[int(data["test_labels"][i, 0])][0]
        os.makedirs(os.path.join(DEMO, "images", name), exist_ok=True)
        write_png(os.path.join(DEMO, "images", name, f"synthetic_test_{i:04d}.png"), data["test_images"][i])

    model, mean, std, metrics = train(data)
    onnx_path = os.path.join(DEMO, "dermacnn.onnx")
    ops, err, ort_acc = export(model, data, onnx_path)
    params = sum(p.numel() for p in model.parameters())
    card = {
        "name": "dermacnn",
        "synthetic_training_data": True,
        "notice": "Trained ONLY on synthetic images (demo/synthetic_dermamnist.npz). A demonstration "
                  "model for robustcert; it has no clinical meaning.",
        "file": "dermacnn.onnx",
        "class_names": [c[0] for c in CLASSES],
        "class_descriptions": [c[1] for c in CLASSES],
        "input": {
            "name": "input",
            "shape": ["N", 3, OUT, OUT],
            "dtype": "float32",
            "value_range": [0.0, 1.0],
            "channel_order": "RGB",
            "layout": "NCHW",
            "preprocessing": "x/255, HWC->CHW; normalisation inside the graph",
            "normalisation_in_graph": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        },
        "output": {"name": "logits", "shape": ["N", len(CLASSES)], "meaning": "unnormalised class scores"},
        "architecture": "Sub/Div(mean,std) - Conv(3->16,3x3,s2) - ReLU - Conv(16->32,3x3,s2) - ReLU - "
                        "Flatten - Gemm(1152->64) - ReLU - Gemm(64->7)",
        "onnx_ops": ops,
        "opset": 13,
        "parameters": int(params),
        "training": {
            "data": "demo/synthetic_dermamnist.npz train split",
            "seed": TRAIN_SEED,
            "epochs": EPOCHS,
            "optimizer": "Adam lr 2e-3, weight decay 1e-4, cosine schedule, batch 64",
            "augmentation": f"random rot90/flip, Gaussian noise sigma {SIGMA_AUG} in pixel space [0,1]",
            "script": SCRIPT,
        },
        "test_accuracy": metrics["test_accuracy"],
        "val_accuracy": metrics["val_accuracy"],
        "train_accuracy": metrics["train_accuracy"],
        "test_accuracy_under_noise": metrics["test_accuracy_under_noise"],
        "test_set_size": SIZES["test"],
        "onnxruntime_max_abs_diff_vs_torch": err,
        "onnxruntime_test_accuracy": ort_acc,
    }
    with open(os.path.join(DEMO, "model_card.json"), "w") as f:
        json.dump(card, f, indent=2)
        f.write("\n")
    write_readme(metadata, card)

    print(f"class counts: {class_counts}")
    print(f"parameters: {params}; ops: {ops}")
    print(f"train accuracy {metrics['train_accuracy']:.4f}, val {metrics['val_accuracy']:.4f}, "
          f"test {metrics['test_accuracy']:.4f}; test under noise sigma {SIGMA_AUG}: "
          f"{metrics['test_accuracy_under_noise']['accuracy']:.4f}; onnxruntime vs torch max diff {err:.2e}")
    for f in sorted(os.listdir(DEMO)):
        p = os.path.join(DEMO, f)
        if os.path.isfile(p):
            print(f"  demo/{f}: {os.path.getsize(p)} bytes")
    return 0


def pin_zip_times(path):
    import zipfile

    tmp = path + ".tmp"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
        for info in src.infolist():
            fixed = zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0))
            fixed.compress_type = zipfile.ZIP_DEFLATED
            fixed.external_attr = 0o644 << 16
            dst.writestr(fixed, src.read(info.filename))
    os.replace(tmp, path)


def write_readme(meta, card):
    counts = meta["class_counts"]
    rows = "\n".join(
        f"| {i} | `{c}` | {d} | {counts['train'][c]} | {counts['val'][c]} | {counts['test'][c]} |"
        for i, (c, d) in enumerate(CLASSES))
    text = f"""# Synthetic dermatology demo (NOT real patient data)

**Everything in this folder is synthetic.** The images are procedurally drawn dermoscopy-like
lesions, not photographs of skin. They exist so that robustcert can demonstrate and test batch
certification on a dermatology-shaped task without shipping (or downloading) a real medical data
set. Neither the images nor the model have any clinical meaning.

## Files

| file | content |
|---|---|
| `synthetic_dermamnist.npz` | {SIZES['train']}/{SIZES['val']}/{SIZES['test']} train/val/test images in the MedMNIST v2 `dermamnist.npz` layout: `train_images`, `val_images`, `test_images` (uint8, N x 28 x 28 x 3, RGB) and `train_labels`, `val_labels`, `test_labels` (uint8, N x 1); plus `metadata_json` (UTF-8 JSON as uint8 bytes: class names, counts, seed, `"synthetic": true`) and `SYNTHETIC_DATA_NOTICE` (a string). |
| `images/<class>/synthetic_test_XXXX.png` | the first {N_PNG} test images (`test_images[XXXX]`) as an image-folder data set, one sub-folder per class. |
| `dermacnn.onnx` | a small CNN trained on the train split (opset 13, dynamic batch). |
| `model_card.json` | class names in order, input specification, architecture, training seed, accuracies. |

## Classes

Label indices and names follow HAM10000 / DermaMNIST. Counts per split:

| label | name | meaning | train | val | test |
|---|---|---|---|---|---|
{rows}

## How the images are made

`verifier-tests/gen_demo.py` (seed {DATA_SEED}) draws each lesion at 112x112 and area-downsamples
it to 28x28, the DermaMNIST size. A lesion follows the ABCD rule of dermoscopy:

- **Asymmetry**: an elliptic stretch `1 + a cos 2(theta - phi)` and an off-centre lobe;
- **Border**: random harmonics (k = 3..9) of the outline and a soft edge (logistic blur);
- **Colour**: 1-4 colours of a per-class palette mixed by smooth random fields, with a darker or
  lighter centre;
- **Diameter**: a per-class range of radii.

Each class has its own ranges (for example melanoma: large, asymmetric, irregular, 3-4 dark
colours with blue-grey; nevi: small, symmetric, regular, one or two browns) and a few cues
(arborizing red vessels and blue-grey nests for bcc, white scale for akiec, a central white patch
for dermatofibroma, red-purple lobules for vascular lesions, fissures for bkl, a blue-white veil
for some melanomas). Every image's parameters and colours are blended by up to {int(BLEND_MAX * 100)} % toward
those of a random other class, so the classes overlap. Backgrounds are jittered skin tones with
illumination gradients and mottling; noise is dark hair strands, vignetting and sensor noise.

## The model

`dermacnn.onnx` takes float32 `[N, 3, 28, 28]` RGB in [0, 1] (pixels / 255, HWC to CHW); the
normalisation `(x - mean) / std` is inside the graph as Sub/Div by constants, so certified radii
are in pixel space. Architecture: {card['architecture']} ({card['parameters']} parameters). Trained
for {EPOCHS} epochs with seed {TRAIN_SEED}, random rotations/flips and Gaussian noise (sigma {SIGMA_AUG})
so that randomized smoothing certifies something.

Test accuracy: **{card['test_accuracy']:.4f}** (clean), {card['test_accuracy_under_noise']['accuracy']:.4f} under Gaussian noise
sigma {SIGMA_AUG} (mean over 20 draws). onnxruntime matches torch within {card['onnxruntime_max_abs_diff_vs_torch']:.1e}.

## Loading it

With numpy: `d = np.load("demo/synthetic_dermamnist.npz"); d["test_images"], d["test_labels"]`
(the MedMNIST `dermamnist.npz` layout; no pickle needed). With robustcert
(`src/data/dataset.rs`), which turns uint8 NHWC images into float NCHW in [0, 1]:

```rust
use robustcert::data::dataset::{{Dataset, LoadOptions, Preprocess, Selection}};
let test = Dataset::load("demo/synthetic_dermamnist.npz", &LoadOptions::default())?; // split "test"
let folder = Dataset::from_image_folder("demo/images", 3, &Preprocess::pixels())?;
let subset = test.select(&Selection::random(32, 7))?; // seeded, recorded in subset.selection
```

## Regenerating

From the repository root (CPU, about a minute; needs torch, onnx, onnxruntime, numpy):

```sh
python3 verifier-tests/gen_demo.py
```

The script deletes and rewrites all of `demo/` deterministically (fixed seeds, single-threaded
training, pinned zip timestamps, its own PNG writer).
"""
    with open(os.path.join(DEMO, "README.md"), "w") as f:
        f.write(text)


if __name__ == "__main__":
    sys.exit(main())
