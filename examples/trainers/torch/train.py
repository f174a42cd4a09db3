#!/usr/bin/env python3
"""Reference PyTorch trainer for `sedna-ll kb train --trainer-cmd` (the plug-in contract is in README.md).

    kb train --trainer-cmd "/usr/bin/python3 examples/trainers/torch/train.py"

Reads the round's export for one task from $SEDNA_LL_TASK_DIR (train.jsonl, heldout.jsonl,
meta.json), trains a small CNN when meta.json gives an input_shape [C, H, W] (else an MLP), and
writes $SEDNA_LL_OUT_DIR/model.onnx (torch.onnx.export, input "input" [N, C, H, W] or [N, dim],
output "probabilities" [N, classes]) and metrics.json. The KB then admits, gates and publishes the
model exactly as one of its own. Seeded (meta.json's seed): the same export gives the same model.

Exit codes: 0 model written; 2 the task export is unusable (message on stderr); 1 anything else.
Settings by environment: TORCH_TRAINER_EPOCHS (default 20), TORCH_TRAINER_THREADS (default 1).
"""
import json
import os
import sys


def fail(code, msg):
    print(f"torch trainer: {msg}", file=sys.stderr)
    sys.exit(code)


def read_rows(path, index):
    xs, ys = [], []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                r = json.loads(line)
                xs.append([float(v) for v in r["x"]])
                ys.append(index[r["label"]])
            except (ValueError, KeyError, TypeError) as e:
                fail(2, f"{path}:{n}: {e}")
    return xs, ys


def main():
    task_dir = os.environ.get("SEDNA_LL_TASK_DIR") or (sys.argv[1] if len(sys.argv) > 1 else "")
    out_dir = os.environ.get("SEDNA_LL_OUT_DIR") or (sys.argv[2] if len(sys.argv) > 2 else "")
    if not task_dir or not out_dir:
        fail(2, "no task dir / out dir (SEDNA_LL_TASK_DIR, SEDNA_LL_OUT_DIR or $1 $2)")
    try:
        import torch
        from torch import nn
    except ImportError:
        fail(1, "PyTorch is not installed (Debian: apt-get install python3-torch; run it with /usr/bin/python3)")
    try:
        with open(os.path.join(task_dir, "meta.json"), encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, ValueError) as e:
        fail(2, f"meta.json: {e}")
    labels = meta["labels"]
    dim = int(meta["dim"])
    index = {l: i for i, l in enumerate(labels)}
    xs, ys = read_rows(os.path.join(task_dir, "train.jsonl"), index)
    hx, hy = read_rows(os.path.join(task_dir, "heldout.jsonl"), index)
    if not xs:
        fail(2, "train.jsonl holds no samples")
    if any(len(x) != dim for x in xs + hx):
        fail(2, f"a sample does not have {dim} values")
    shape = meta.get("input_shape")
    torch.manual_seed(int(meta.get("seed", 1)))
    torch.set_num_threads(int(os.environ.get("TORCH_TRAINER_THREADS", "1")))
    k = len(labels)
    if shape:
        c, h, w = (int(v) for v in shape)
        if c * h * w != dim:
            fail(2, f"input_shape {shape} holds {c * h * w} values, the samples have {dim}")
        flat = 16 * (h // 4) * (w // 4)
        body = nn.Sequential(
            nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(flat, 64), nn.ReLU(), nn.Linear(64, k),
        )
        in_shape = (c, h, w)
        arch = "torch-cnn"
    else:
        body = nn.Sequential(nn.Linear(dim, 128), nn.ReLU(), nn.Linear(128, k))
        in_shape = (dim,)
        arch = "torch-mlp"
    X = torch.tensor(xs, dtype=torch.float32).reshape(-1, *in_shape)
    Y = torch.tensor(ys, dtype=torch.long)
    # early stopping on a seeded 15% slice of the training data (the held-out set is the KB's gate)
    g = torch.Generator().manual_seed(int(meta.get("seed", 1)))
    perm = torch.randperm(len(X), generator=g)
    nval = len(X) * 15 // 100 if len(X) >= 40 else 0
    vi, ti = perm[:nval], perm[nval:]
    opt = torch.optim.Adam(body.parameters(), lr=2e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    epochs = int(os.environ.get("TORCH_TRAINER_EPOCHS", "20"))
    best, best_loss, best_epoch, since, ran = None, float("inf"), 0, 0, 0
    for epoch in range(1, epochs + 1):
        ran = epoch
        body.train()
        order = ti[torch.randperm(len(ti), generator=g)]
        for s in range(0, len(order), 32):
            b = order[s:s + 32]
            opt.zero_grad()
            loss_fn(body(X[b]), Y[b]).backward()
            opt.step()
        if nval:
            body.eval()
            with torch.no_grad():
                vl = loss_fn(body(X[vi]), Y[vi]).item()
            if vl < best_loss - 1e-6:
                best_loss, best_epoch, since = vl, epoch, 0
                best = {n: t.clone() for n, t in body.state_dict().items()}
            else:
                since += 1
                if since >= 5:
                    break
    if best is not None:
        body.load_state_dict(best)
    else:
        best_epoch = ran
    model = nn.Sequential(body, nn.Softmax(dim=1)).eval()
    acc = None
    if hx:
        with torch.no_grad():
            p = model(torch.tensor(hx, dtype=torch.float32).reshape(-1, *in_shape)).argmax(1)
        acc = float((p == torch.tensor(hy)).float().mean())
    os.makedirs(out_dir, exist_ok=True)
    torch.onnx.export(
        model, torch.zeros(1, *in_shape), os.path.join(out_dir, "model.onnx"),
        input_names=["input"], output_names=["probabilities"],
        dynamic_axes={"input": {0: "N"}, "probabilities": {0: "N"}}, opset_version=13,
    )
    with open(os.path.join(out_dir, "metrics.json"), "w", encoding="utf-8") as f:
        json.dump({"arch": arch, "epochs": best_epoch, "epochs_run": ran, "heldout_accuracy": acc, "output_kind": "probabilities", "torch": torch.__version__}, f)


if __name__ == "__main__":
    main()
