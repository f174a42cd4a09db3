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


def read_varint(b, p):
    v, shift = 0, 0
    while True:
        c = b[p]
        p += 1
        v |= (c & 0x7F) << shift
        if c < 0x80:
            return v, p
        shift += 7


def pb_fields(b):
    """(field number, wire type, value) of a protobuf message: ints for varint/fixed, bytes for length-delimited."""
    p = 0
    while p < len(b):
        key, p = read_varint(b, p)
        f, wt = key >> 3, key & 7
        if wt == 0:
            v, p = read_varint(b, p)
        elif wt == 1:
            v, p = b[p:p + 8], p + 8
        elif wt == 2:
            n, p = read_varint(b, p)
            v, p = b[p:p + n], p + n
        elif wt == 5:
            v, p = b[p:p + 4], p + 4
        else:
            raise ValueError(f"protobuf wire type {wt}")
        yield f, wt, v


def onnx_layers(path):
    """[(op, weight list shaped [out, in, ...], weight values, bias values)] of the Conv/Gemm nodes, in graph order."""
    import struct
    with open(path, "rb") as f:
        model = f.read()
    graph = next(v for f, wt, v in pb_fields(model) if f == 7)
    inits, nodes = {}, []
    for f, wt, v in pb_fields(graph):
        if f == 5:  # TensorProto
            dims, name, raw, floats = [], "", None, []
            for tf, twt, tv in pb_fields(v):
                if tf == 1:
                    if twt == 2:
                        q = 0
                        while q < len(tv):
                            d, q = read_varint(tv, q)
                            dims.append(d)
                    else:
                        dims.append(tv)
                elif tf == 2 and tv != 1:
                    raise ValueError("initializer is not float32")
                elif tf == 4:
                    floats.extend(struct.unpack(f"<{len(tv) // 4}f", tv))
                elif tf == 8:
                    name = tv.decode()
                elif tf == 9:
                    raw = tv
            vals = list(struct.unpack(f"<{len(raw) // 4}f", raw)) if raw is not None else floats
            inits[name] = (dims, vals)
        elif f == 1:  # NodeProto
            ins, op, attrs = [], "", {}
            for nf, nwt, nv in pb_fields(v):
                if nf == 1:
                    ins.append(nv.decode())
                elif nf == 4:
                    op = nv.decode()
                elif nf == 5:
                    an, ai = "", None
                    for af, awt, av in pb_fields(nv):
                        if af == 1:
                            an = av.decode()
                        elif af == 3:
                            ai = av
                    attrs[an] = ai
            nodes.append((op, ins, attrs))
    layers = []
    for op, ins, attrs in nodes:
        if op not in ("Conv", "Gemm") or len(ins) < 3 or ins[1] not in inits or ins[2] not in inits:
            continue
        (wd, wv), (bd, bv) = inits[ins[1]], inits[ins[2]]
        if op == "Gemm" and not attrs.get("transB"):
            n_in, n_out = wd
            wv = [wv[i * n_out + o] for o in range(n_out) for i in range(n_in)]
            wd = [n_out, n_in]
        layers.append((op, wd, wv, bv))
    return layers


def load_parent(body, path, torch, nn):
    """Copy the parent's layers into body's Conv2d/Linear modules while the shapes match; returns how many."""
    try:
        layers = onnx_layers(path)
    except (OSError, ValueError, StopIteration, IndexError) as e:
        print(f"torch trainer: parent model not read ({e}); training from scratch", file=sys.stderr)
        return 0
    mods = [m for m in body if isinstance(m, (nn.Conv2d, nn.Linear))]
    n = 0
    with torch.no_grad():
        for m, (op, wd, wv, bv) in zip(mods, layers):
            if list(m.weight.shape) != list(wd) or m.bias.numel() != len(bv) or (op == "Conv") != isinstance(m, nn.Conv2d):
                break
            m.weight.copy_(torch.tensor(wv, dtype=torch.float32).reshape(wd))
            m.bias.copy_(torch.tensor(bv, dtype=torch.float32))
            n += 1
    return n


def build_body(torch, nn, shape, dim, k):
    """The module this trainer trains: sedna-ll's built-in CNN architecture for [C, H, W] inputs, else an MLP."""
    if shape:
        c, h, w = (int(v) for v in shape)
        flat = 16 * (h // 4) * (w // 4)
        body = nn.Sequential(
            nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(flat, 64), nn.ReLU(), nn.Linear(64, k),
        )
        return body, (c, h, w), "torch-cnn"
    return nn.Sequential(nn.Linear(dim, 128), nn.ReLU(), nn.Linear(128, k)), (dim,), "torch-mlp"


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
    if shape and int(shape[0]) * int(shape[1]) * int(shape[2]) != dim:
        fail(2, f"input_shape {shape} holds {int(shape[0]) * int(shape[1]) * int(shape[2])} values, the samples have {dim}")
    body, in_shape, arch = build_body(torch, nn, shape, dim, k)
    parent = os.environ.get("SEDNA_LL_PARENT_MODEL") or ""
    from_parent = load_parent(body, parent, torch, nn) if parent else 0
    X = torch.tensor(xs, dtype=torch.float32).reshape(-1, *in_shape)
    Y = torch.tensor(ys, dtype=torch.long)
    # early stopping on a seeded 15% slice of the training data (the held-out set is the KB's gate)
    g = torch.Generator().manual_seed(int(meta.get("seed", 1)))
    perm = torch.randperm(len(X), generator=g)
    nval = len(X) * 15 // 100 if len(X) >= 40 else 0
    vi, ti = perm[:nval], perm[nval:]
    # a warm start adapts: a smaller step keeps what the parent learned
    opt = torch.optim.Adam(body.parameters(), lr=1e-3 if from_parent else 2e-3, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    epochs = int(os.environ.get("TORCH_TRAINER_EPOCHS", "20"))
    best, best_loss, best_epoch, since, ran = None, float("inf"), 0, 0, 0
    if nval and from_parent:
        # the parent's own weights are epoch 0: training must beat them on the validation slice
        body.eval()
        with torch.no_grad():
            best_loss = loss_fn(body(X[vi]), Y[vi]).item()
        best = {n: t.clone() for n, t in body.state_dict().items()}
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
        json.dump({"arch": arch, "parent_layers_loaded": from_parent, "epochs": best_epoch, "epochs_run": ran, "heldout_accuracy": acc, "output_kind": "probabilities", "torch": torch.__version__}, f)


if __name__ == "__main__":
    main()
