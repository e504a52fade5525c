"""PyTorch peer for `peco bench`: the same training steps as bench/workloads.go,
adapted from the project's CPU anchor (BEiT-style MIM step of ViT-Tiny/4 on 32x32
images, AdamW, float32). Run with Debian's python3-torch:

    /usr/bin/python3 bench/peers/torch_peer.py MODE LAYERS BATCH WARMUP ITERS

MODE is mim (vocab 1024, 26 of 64 patches masked, head on masked positions only)
or finetune (10-way head on mean-pooled patch tokens). Prints one JSON line."""
import json, os, resource, sys, time
import torch, torch.nn as nn, torch.nn.functional as F


def attn(q, k, v):
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v)
    w = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
    return w.softmax(-1) @ v


class Block(nn.Module):
    def __init__(s, d, h):
        super().__init__()
        s.n1 = nn.LayerNorm(d); s.qkv = nn.Linear(d, 3 * d); s.proj = nn.Linear(d, d)
        s.n2 = nn.LayerNorm(d); s.fc1 = nn.Linear(d, 4 * d); s.fc2 = nn.Linear(4 * d, d); s.h = h

    def forward(s, x):
        B, N, D = x.shape
        q, k, v = s.qkv(s.n1(x)).view(B, N, 3, s.h, D // s.h).permute(2, 0, 3, 1, 4)
        x = x + s.proj(attn(q, k, v).transpose(1, 2).reshape(B, N, D))
        return x + s.fc2(F.gelu(s.fc1(s.n2(x))))


class ViT(nn.Module):
    def __init__(s, d, depth, heads, out, img, p):
        super().__init__()
        s.pe = nn.Conv2d(3, d, p, p); n = (img // p) ** 2
        s.cls = nn.Parameter(torch.zeros(1, 1, d)); s.mask = nn.Parameter(torch.zeros(1, 1, d))
        s.pos = nn.Parameter(torch.zeros(1, n + 1, d))
        s.blocks = nn.ModuleList([Block(d, heads) for _ in range(depth)])
        s.norm = nn.LayerNorm(d); s.head = nn.Linear(d, out)

    def tokens(s, x, m=None):
        x = s.pe(x).flatten(2).transpose(1, 2)
        if m is not None:
            x = torch.where(m.unsqueeze(-1), s.mask.expand_as(x), x)
        x = torch.cat([s.cls.expand(x.shape[0], -1, -1), x], 1) + s.pos
        for b in s.blocks:
            x = b(x)
        return s.norm(x)


def main():
    mode, layers, B, warmup, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    threads = int(os.environ.get("THREADS", str(os.cpu_count())))
    torch.set_num_threads(threads); torch.manual_seed(0)
    out = 1024 if mode == "mim" else 10
    model = ViT(192, layers, 3, out, 32, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-3, weight_decay=0.05)
    x = torch.randn(B, 3, 32, 32)
    m = torch.zeros(B, 64, dtype=torch.bool); m[:, :26] = True; m = m[:, torch.randperm(64)]
    tgt = torch.randint(0, 1024, (B, 64)); labels = torch.randint(0, 10, (B,))

    def step():
        if mode == "mim":
            t = model.tokens(x, m)[:, 1:]
            loss = F.cross_entropy(model.head(t[m]), tgt[m])
        else:
            loss = F.cross_entropy(model.head(model.tokens(x)[:, 1:].mean(1)), labels)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return loss.item()

    t0 = time.perf_counter()
    for _ in range(max(warmup, 1)):
        step()
    first = time.perf_counter() - t0
    ts, loss = [], 0.0
    for _ in range(iters):
        t0 = time.perf_counter(); loss = step(); ts.append(time.perf_counter() - t0)
    ts.sort(); t = ts[len(ts) // 2]
    print(json.dumps(dict(impl="torch " + torch.__version__ + f" ({threads} threads)", batch=B, sec_per_step=t,
                          img_per_sec=B / t, iters=iters, loss=loss, compile_sec=first / max(warmup, 1),
                          max_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)), flush=True)


if __name__ == "__main__":
    main()
