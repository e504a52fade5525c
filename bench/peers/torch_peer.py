"""PyTorch peer for `peco bench`: the same training steps as bench/workloads.go,
adapted from the project's CPU anchor (BEiT-style MIM step of ViT-Tiny/4 on 32x32
images, AdamW, float32). Run with Debian's python3-torch:

    /usr/bin/python3 bench/peers/torch_peer.py MODE LAYERS BATCH WARMUP ITERS [ARCHIVE]

MODE is mim (vocab 1024, 26 of 64 patches masked, head on masked positions only),
mim-online (mim with its targets computed in the step by a frozen VQ-VAE encoder
and nearest-codeword assignment, 1024 codes), finetune (10-way head on mean-pooled
patch tokens), tokenizer (the PeCo VQ-VAE step of configs/tokenizer/cifar10_peco.yaml
on IMAGE x IMAGE images, env IMAGE, default 32; LAYERS is ignored) or gemm (one
LAYERS x LAYERS x LAYERS float32 torch.mm; BATCH is ignored). With ARCHIVE (an
ImageFolder .tar.gz such as cifar10.tar.gz), mim and finetune train on its real
training images, decoded with PIL each step, instead of fixed random ones. Threads:
env THREADS (default all CPUs). Prints one JSON line."""
import io, json, math, os, random, resource, sys, tarfile, time
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


# ---- real images: an ImageFolder archive read with tarfile + PIL ----

class Archive:
    """The training split of an ImageFolder .tar.gz (<root>/train/<class>/*.jpg),
    held as encoded bytes; batch() decodes and augments like the Go pipeline
    workloads: random-resized crop (scale 0.08-1, ratio 3/4-4/3, bilinear) to
    SIZE, horizontal flip 0.5, ImageNet normalisation."""

    def __init__(s, path, size=32, seed=0):
        from PIL import Image
        s.Image, s.size, s.rng = Image, size, random.Random(seed)
        s.files = []
        with tarfile.open(path, "r:*") as tf:
            for m in tf:
                parts = m.name.split("/")
                if m.isfile() and len(parts) >= 4 and parts[1] == "train" and not parts[-1].startswith("."):
                    s.files.append(tf.extractfile(m).read())
        if not s.files:
            raise SystemExit(f"{path}: no training images under <root>/train/")
        s.order, s.pos = [], 0
        s.mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
        s.std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)

    def crop_box(s, w, h):
        area = w * h
        for _ in range(10):
            a = area * s.rng.uniform(0.08, 1.0)
            r = math.exp(s.rng.uniform(math.log(3 / 4), math.log(4 / 3)))
            cw, ch = int(round(math.sqrt(a * r))), int(round(math.sqrt(a / r)))
            if 0 < cw <= w and 0 < ch <= h:
                x, y = s.rng.randint(0, w - cw), s.rng.randint(0, h - ch)
                return (x, y, x + cw, y + ch)
        c = min(w, h)
        return ((w - c) // 2, (h - c) // 2, (w - c) // 2 + c, (h - c) // 2 + c)

    def batch(s, n):
        out = torch.empty(n, 3, s.size, s.size)
        for i in range(n):
            if s.pos == len(s.order):
                s.order, s.pos = list(range(len(s.files))), 0
                s.rng.shuffle(s.order)
            im = s.Image.open(io.BytesIO(s.files[s.order[s.pos]])).convert("RGB"); s.pos += 1
            im = im.resize((s.size, s.size), s.Image.BILINEAR, box=s.crop_box(*im.size))
            if s.rng.random() < 0.5:
                im = im.transpose(s.Image.FLIP_LEFT_RIGHT)
            x = torch.frombuffer(bytearray(im.tobytes()), dtype=torch.uint8).view(s.size, s.size, 3)
            out[i] = (x.permute(2, 0, 1).float() / 255 - s.mean) / s.std
        return out


# ---- tokenizer: configs/tokenizer/cifar10_peco.yaml ----
# Mirrors backbones/conv (Encoder, Decoder, ResBlock, GroupNorm eps 1e-6, swish,
# nearest 2x upsampling + 3x3 conv), tokenizers/vqvae.go (nearest codeword by
# ||z||^2 - 2 z.e + ||e||^2, straight-through, codebook from the first batch's
# encoder vectors, restart of codes unused for 100 steps), losses (l1, vq with beta
# on the commitment term, perceptual: mean squared feature difference summed over
# MobileNet V2's stages 0-3 on input and reconstruction as one batch) and AdamW
# (lr 1e-3, no weight decay, global-norm clipping 1.0).

def groups_for(c, g):
    g = min(g, c)
    while c % g:
        g -= 1
    return g


def gn(c, groups=32):
    return nn.GroupNorm(groups_for(c, groups), c, eps=1e-6)


def conv(cin, cout, k, stride=1, pad=0):
    c = nn.Conv2d(cin, cout, k, stride, pad)
    nn.init.zeros_(c.bias)  # as backbones/conv (the weight: PyTorch's default, also U(+-1/sqrt(fan_in)))
    return c


class Res(nn.Module):
    def __init__(s, cin, cout):
        super().__init__()
        s.n1, s.c1, s.n2, s.c2 = gn(cin), conv(cin, cout, 3, 1, 1), gn(cout), conv(cout, cout, 3, 1, 1)
        s.sc = conv(cin, cout, 1) if cin != cout else None

    def forward(s, x):
        h = s.c2(F.silu(s.n2(s.c1(F.silu(s.n1(x))))))
        return (s.sc(x) if s.sc is not None else x) + h


class Encoder(nn.Module):
    def __init__(s, width=64, mults=(1, 2), blocks=1, cout=64):
        super().__init__()
        layers, c = [conv(3, width, 3, 1, 1)], width
        for m in mults:
            for _ in range(blocks):
                layers.append(Res(c, width * m)); c = width * m
            layers.append(conv(c, c, 3, 2, 1))  # stride-2 downsample
        layers += [Res(c, c), Res(c, c), gn(c), nn.SiLU(), conv(c, cout, 1)]
        s.net = nn.Sequential(*layers)

    def forward(s, x):
        return s.net(x)


class Decoder(nn.Module):
    def __init__(s, width=64, mults=(1, 2), blocks=1, cin=64):
        super().__init__()
        c = width * mults[-1]
        layers = [conv(cin, c, 3, 1, 1), Res(c, c), Res(c, c)]
        for m in reversed(mults):
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), conv(c, c, 3, 1, 1)]
            for _ in range(blocks):
                layers.append(Res(c, width * m)); c = width * m
        layers += [gn(c), nn.SiLU(), conv(c, 3, 3, 1, 1)]
        s.net = nn.Sequential(*layers)

    def forward(s, x):
        return s.net(x)


class Quantizer(nn.Module):
    def __init__(s, k=512, d=64, restart_after=100):
        super().__init__()
        s.codebook = nn.Parameter(torch.randn(k, d) / math.sqrt(d))
        s.register_buffer("unused", torch.zeros(k))
        s.k, s.restart_after = k, restart_after

    @torch.no_grad()
    def init_from(s, z):
        s.codebook.copy_(z[torch.randint(0, z.shape[0], (s.k,))]); s.unused.zero_()

    def forward(s, z):  # z [N, D]
        zd = z.detach()
        dead = None
        if s.training and s.restart_after > 0:
            dead = s.unused >= s.restart_after
            with torch.no_grad():
                s.codebook.copy_(torch.where(dead[:, None], zd[torch.randint(0, z.shape[0], (s.k,))], s.codebook))
        cb = s.codebook
        cbd = cb.detach()
        dist = (zd * zd).sum(1, keepdim=True) - 2 * zd @ cbd.t() + (cbd * cbd).sum(1)[None]
        ids = dist.argmin(1)
        zq = F.embedding(ids, cb)
        if s.training:
            with torch.no_grad():
                used = torch.bincount(ids, minlength=s.k) > 0
                if dead is not None:
                    used |= dead
                s.unused.copy_(torch.where(used, torch.zeros_like(s.unused), s.unused + 1))
        return z + (zq - z).detach(), zq, ids


class InvertedResidual(nn.Module):
    """A TFLite MobileNet V2 block (batch norm folded: convolutions with biases,
    ReLU6): optional 1x1 expand, 3x3 depthwise (TensorFlow SAME padding), 1x1
    linear projection, residual when the shape allows. tap_expand returns the
    expand output instead (the feature tap at a resolution's last operator)."""

    def __init__(s, cin, cout, t, stride):
        super().__init__()
        h = cin * t
        s.expand = nn.Conv2d(cin, h, 1) if t != 1 else None
        s.dw = nn.Conv2d(h, h, 3, stride, 1 if stride == 1 else 0, groups=h)
        s.project = nn.Conv2d(h, cout, 1)
        s.stride, s.res = stride, stride == 1 and cin == cout

    def expanded(s, x):
        return F.relu6(s.expand(x)) if s.expand is not None else x

    def rest(s, x, e):
        if s.stride == 2:
            e = F.pad(e, (0, 1, 0, 1))  # SAME on even sizes: the extra pixel after
        y = s.project(F.relu6(s.dw(e)))
        return x + y if s.res else y


class MobileNetV2Stages(nn.Module):
    """MobileNet V2 1.0 up to the stride-16 tap, with random frozen weights: the
    Go network's Features.Layers[0:4] = the expand outputs of expanded_conv_1, _3,
    _6 and _13 (96, 144, 192 and 576 channels; strides 2, 4, 8, 16)."""
    # (t, c, n, s) of MobileNet V2 up to the stage whose expand is the last tap.
    CFG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 1, 2)]

    def __init__(s):
        super().__init__()
        s.conv = nn.Conv2d(3, 32, 3, 2, 0)
        blocks, cin = [], 32
        for t, c, n, st in s.CFG:
            for i in range(n):
                blocks.append(InvertedResidual(cin, c, t, st if i == 0 else 1)); cin = c
        s.blocks = nn.ModuleList(blocks)
        s.taps = {1, 3, 6, 13}  # blocks whose expand output is a tap
        for p in s.parameters():
            p.requires_grad_(False)

    def forward(s, x):
        x = F.relu6(s.conv(F.pad(x, (0, 1, 0, 1))))
        feats = []
        for i, b in enumerate(s.blocks):
            e = b.expanded(x)
            if i in s.taps:
                feats.append(e)
                if len(feats) == len(s.taps):
                    return feats
            x = b.rest(x, e)
        return feats


class VQVAE(nn.Module):
    def __init__(s):
        super().__init__()
        s.enc, s.quant, s.dec = Encoder(), Quantizer(), Decoder()

    def encode(s, x):
        z = s.enc(x)
        b, d, h, w = z.shape
        return z.permute(0, 2, 3, 1).reshape(-1, d), (b, h, w, d)

    def forward(s, x):
        z, (b, h, w, d) = s.encode(x)
        st, zq, ids = s.quant(z)
        return s.dec(st.view(b, h, w, d).permute(0, 3, 1, 2)), z, zq


def tokenizer_step_fn(B, size=32):
    tok, net = VQVAE(), MobileNetV2Stages().eval()
    opt = torch.optim.AdamW(tok.parameters(), lr=1e-3, weight_decay=0.0)
    x = torch.rand(B, 3, size, size) * 2 - 1
    pending = [True]

    def step():
        if pending[0]:  # the task initialises the codebook from its first batch
            pending[0] = False
            with torch.no_grad():
                tok.quant.init_from(tok.encode(x)[0])
        rec, z, zq = tok(x)
        l1 = (x - rec).abs().mean()
        vq = ((z.detach() - zq) ** 2).mean() + 0.25 * ((z - zq.detach()) ** 2).mean()
        feats = net(torch.cat([x, rec]))
        perc = sum(((f[:B] - f[B:]) ** 2).mean() for f in feats)
        loss = l1 + vq + 0.1 * perc
        opt.zero_grad(set_to_none=True); loss.backward()
        torch.nn.utils.clip_grad_norm_(tok.parameters(), 1.0); opt.step()
        return loss.item()
    return step


def gemm_step_fn(n):
    a, b, c = torch.randn(n, n), torch.randn(n, n), torch.empty(n, n)

    def step():
        torch.mm(a, b, out=c)
        return float(c[0, 0])
    return step


def vit_step_fn(mode, layers, B, archive):
    online = mode == "mim-online"
    if online:
        mode = "mim"
        tok = VQVAE(); tok.quant = Quantizer(k=1024); tok.eval()
        for p in tok.parameters():
            p.requires_grad_(False)
    out = 1024 if mode == "mim" else 10
    model = ViT(192, layers, 3, out, 32, 4)
    opt = torch.optim.AdamW(model.parameters(), lr=1.5e-3, weight_decay=0.05)
    x = torch.randn(B, 3, 32, 32)
    m = torch.zeros(B, 64, dtype=torch.bool); m[:, :26] = True; m = m[:, torch.randperm(64)]
    tgt = torch.randint(0, 1024, (B, 64)); labels = torch.randint(0, 10, (B,))
    data = Archive(archive) if archive else None

    def step():
        xb = data.batch(B) if data else x
        tg = tgt
        if online:  # the targets: nearest codewords of the frozen encoder's vectors
            with torch.no_grad():
                z, _ = tok.encode(xb)
                cb = tok.quant.codebook
                tg = ((z * z).sum(1, keepdim=True) - 2 * z @ cb.t() + (cb * cb).sum(1)[None]).argmin(1).view(B, -1)
        if mode == "mim":
            t = model.tokens(xb, m)[:, 1:]
            loss = F.cross_entropy(model.head(t[m]), tg[m])
        else:
            loss = F.cross_entropy(model.head(model.tokens(xb)[:, 1:].mean(1)), labels)
        opt.zero_grad(set_to_none=True); loss.backward(); opt.step()
        return loss.item()
    return step


def main():
    mode, layers, B, warmup, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    archive = sys.argv[6] if len(sys.argv) > 6 else ""
    threads = int(os.environ.get("THREADS", str(os.cpu_count())))
    torch.set_num_threads(threads); torch.manual_seed(0)
    if mode == "tokenizer":
        step = tokenizer_step_fn(B, int(os.environ.get("IMAGE", "32")))
    elif mode == "gemm":
        step, B = gemm_step_fn(layers), 1
    elif mode in ("mim", "mim-online", "finetune"):
        step = vit_step_fn(mode, layers, B, archive)
    else:
        raise SystemExit(f"unknown mode {mode!r}: mim, mim-online, finetune, tokenizer or gemm")

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
