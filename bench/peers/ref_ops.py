"""Reference formulas of pattn's operators in PyTorch, written from shared/SPEC.md.

They are the peers' "reference" implementations (and what torch.compile compiles): plain
tensor code, no custom kernels. Layouts follow SPEC.md: dense/ring/block-sparse take
[b, h, n, d] (BHND), dilated takes [b, n, h, d] (BNHD), MHA takes [b, n, E].
"""
import math

import torch


def attention(q, k, v, causal=False, scale=None, mask=None):
    """SPEC 1: softmax(scale * q k^T + mask) v, causal bottom-right aligned, f32 math."""
    nq, nk, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = scale or 1.0 / math.sqrt(d)
    s = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if mask is not None:
        s = s + mask
    if causal:
        i = torch.arange(nq, device=q.device)[:, None]
        j = torch.arange(nk, device=q.device)[None, :]
        s = s.masked_fill(j > i + nk - nq, float("-inf"))
    p = torch.softmax(s, dim=-1).nan_to_num(0.0)  # a row with no visible key gives 0
    return torch.matmul(p, v.float()).to(q.dtype)


def attention_lse(q, k, v, causal=False, scale=None):
    """attention plus the natural-log logsumexp of each row (f32), [b, h, nq]."""
    nq, nk, d = q.shape[-2], k.shape[-2], q.shape[-1]
    scale = scale or 1.0 / math.sqrt(d)
    s = torch.matmul(q.float(), k.float().transpose(-1, -2)) * scale
    if causal:
        i = torch.arange(nq, device=q.device)[:, None]
        j = torch.arange(nk, device=q.device)[None, :]
        s = s.masked_fill(j > i + nk - nq, float("-inf"))
    lse = torch.logsumexp(s, dim=-1)
    p = torch.exp(s - lse[..., None]).nan_to_num(0.0)
    return torch.matmul(p, v.float()), lse


def ring_attention(q, k, v, ring_size=1, causal=False, scale=None):
    """SPEC 3, one context: K/V in ring_size chunks folded in with an online softmax (f32)."""
    b, h, nq, d = q.shape
    nk = k.shape[-2]
    scale = scale or 1.0 / math.sqrt(d)
    c = nk // ring_size
    qf = q.float() * scale
    m = torch.full((b, h, nq, 1), float("-inf"), device=q.device)
    l = torch.zeros((b, h, nq, 1), device=q.device)
    acc = torch.zeros((b, h, nq, v.shape[-1]), device=q.device)
    i = torch.arange(nq, device=q.device)[:, None]
    for r in range(ring_size):
        kc = k[:, :, r * c:(r + 1) * c].float()
        vc = v[:, :, r * c:(r + 1) * c].float()
        s = torch.matmul(qf, kc.transpose(-1, -2))
        if causal:
            j = torch.arange(r * c, (r + 1) * c, device=q.device)[None, :]
            s = s.masked_fill(j > i + nk - nq, float("-inf"))
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        safe = torch.where(torch.isinf(m_new), torch.zeros_like(m_new), m_new)
        p = torch.exp(s - safe)
        alpha = torch.exp(m - safe)
        l = l * alpha + p.sum(dim=-1, keepdim=True)
        acc = acc * alpha + torch.matmul(p, vc)
        m = m_new
    return (acc / l.clamp_min(1e-30)).masked_fill(l == 0, 0.0).to(q.dtype)


def _segment_attention(x_q, x_k, x_v, causal, scale):
    """attention over [b, nseg, m, hg, d] within each segment (heads on dim 3)."""
    q = x_q.permute(0, 1, 3, 2, 4)  # [b, nseg, hg, m, d]
    k = x_k.permute(0, 1, 3, 2, 4)
    v = x_v.permute(0, 1, 3, 2, 4)
    o, lse = attention_lse(q, k, v, causal=causal, scale=scale)
    return o.permute(0, 1, 3, 2, 4), lse.permute(0, 1, 3, 2)  # [b,nseg,m,hg,d], [b,nseg,m,hg]


def dilated_head_groups(q, k, v, segments, rates, causal=False, scale=None):
    """SPEC 2, merge HEAD_GROUPS (dilated-attention-pytorch): q, k, v, out [b, n, h, d]."""
    b, n, h, d = q.shape
    G = len(segments)
    scale = scale or 1.0 / math.sqrt(d)
    out = torch.zeros(b, n, h, d, device=q.device, dtype=torch.float32)
    h0 = 0
    for i, (s, r) in enumerate(zip(segments, rates)):
        hg = h // G + (1 if i < h % G else 0)
        o = i % r
        if hg == 0 or o >= s:
            h0 += hg
            continue
        sl = slice(h0, h0 + hg)

        def gather(x):
            return x[:, :, sl].reshape(b, n // s, s, hg, d)[:, :, o::r]
        res, _ = _segment_attention(gather(q), gather(k), gather(v), causal, scale)
        view = out[:, :, sl].reshape(b, n // s, s, hg, d)
        view[:, :, o::r] += res
        out[:, :, sl] = view.reshape(b, n, hg, d)
        h0 += hg
    return (out / G).to(q.dtype)


def dilated_lse(q, k, v, segments, rates, causal=False, scale=None):
    """SPEC 2, merge LSE (LongNet/torchscale): every branch on every head, softmax of lse."""
    b, n, h, d = q.shape
    scale = scale or 1.0 / math.sqrt(d)
    outs, lses = [], []
    for s, r in zip(segments, rates):
        o_i = torch.zeros(b, n, h, d, device=q.device)
        l_i = torch.full((b, n, h), float("-inf"), device=q.device)
        blk = -(-h // r)
        for c in range(r):
            hs = slice(c * blk, min(h, (c + 1) * blk))
            if c * blk >= h or c >= s:
                continue
            hc = hs.stop - hs.start

            def gather(x):
                return x[:, :, hs].reshape(b, n // s, s, hc, d)[:, :, c::r]
            res, lse = _segment_attention(gather(q), gather(k), gather(v), causal, scale)
            ov = o_i[:, :, hs].reshape(b, n // s, s, hc, d)
            ov[:, :, c::r] = res
            o_i[:, :, hs] = ov.reshape(b, n, hc, d)
            lv = l_i[:, :, hs].reshape(b, n // s, s, hc)
            lv[:, :, c::r] = lse
            l_i[:, :, hs] = lv.reshape(b, n, hc)
        outs.append(o_i)
        lses.append(l_i)
    lse = torch.stack(lses)  # [G, b, n, h]
    w = torch.softmax(lse, dim=0).nan_to_num(0.0)
    return (w[..., None] * torch.stack(outs)).sum(0).to(q.dtype)


# ---- block-sparse (SPEC 4) ----
def layout_local(nqb, nkb, window):
    i = torch.arange(nqb)[:, None]
    j = torch.arange(nkb)[None, :]
    return (i - j).abs() <= window


def layout_dilated(nqb, nkb, rates):
    i = torch.arange(nqb)[:, None]
    j = torch.arange(nkb)[None, :]
    m = i == j
    for r in rates:
        m = m | (j == i + r) | (j == i - r)
    return m


def block_layout(nq, nk, bs, window, rates, causal=False):
    nqb, nkb = -(-nq // bs), -(-nk // bs)
    lay = layout_local(nqb, nkb, window)
    if rates:
        lay = lay | layout_dilated(nqb, nkb, rates)
    if causal:
        lay = lay & (torch.arange(nkb)[None, :] <= torch.arange(nqb)[:, None])
    return lay


def block_mask(layout, nq, nk, bs, device):
    """token-level additive mask (0 / -inf) from a block layout."""
    tok = layout.repeat_interleave(bs, 0).repeat_interleave(bs, 1)[:nq, :nk].to(device)
    return torch.zeros(nq, nk, device=device).masked_fill(~tok, float("-inf"))


def block_sparse(q, k, v, layout, bs, causal=False, scale=None):
    """dense attention with scores outside active blocks at -inf, one joint softmax."""
    mask = block_mask(layout, q.shape[-2], k.shape[-2], bs, q.device)
    return attention(q, k, v, causal=causal, scale=scale, mask=mask)


# ---- multi-head attention (SPEC 5) ----
class MHA(torch.nn.Module):
    """y = out_proj(core(split(q_proj x), split(k_proj x), split(v_proj x))), E = h * d."""

    def __init__(self, E, h, core, device, dtype):
        super().__init__()
        self.h, self.core = h, core
        self.q_proj = torch.nn.Linear(E, E, device=device, dtype=dtype)
        self.k_proj = torch.nn.Linear(E, E, device=device, dtype=dtype)
        self.v_proj = torch.nn.Linear(E, E, device=device, dtype=dtype)
        self.out_proj = torch.nn.Linear(E, E, device=device, dtype=dtype)

    def forward(self, x):
        b, n, E = x.shape
        d = E // self.h
        q = self.q_proj(x).view(b, n, self.h, d)  # BNHD
        k = self.k_proj(x).view(b, n, self.h, d)
        v = self.v_proj(x).view(b, n, self.h, d)
        a = self.core(q, k, v)  # BNHD in, BNHD out
        return self.out_proj(a.reshape(b, n, E))


def bhnd_core(fn):
    """wraps a BHND core (dense, ring, block-sparse) for MHA's BNHD heads."""
    def core(q, k, v):
        return fn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)).transpose(1, 2)
    return core


# ---- md_lrpe_cosine (SPEC 6) ----
def lrpe_e(d, m):
    c = -(-d // m)
    e = 1
    while e < c:
        e <<= 1
    return e


def lrpe_angles(theta, shape, extra, d):
    """[h, n, d] f32 angles: ang = (float)p[k // e] * theta[h][k % e]; 0 on extra tokens."""
    h, e = theta.shape
    m = len(shape)
    N = 1
    for s in shape:
        N *= s
    c = torch.arange(N, device=theta.device)
    pos = []
    for s in reversed(shape):  # last axis fastest
        pos.append(c % s)
        c = c // s
    pos = torch.stack(list(reversed(pos)), dim=1).float()  # [N, m]
    k = torch.arange(d, device=theta.device)
    axis = (k // e).clamp_max(m - 1)
    p = pos[:, axis]  # [N, d]
    p = torch.where((k // e < m)[None, :], p, torch.zeros_like(p))
    ang = p[None, :, :] * theta[:, k % e][:, None, :]  # [h, N, d]
    zeros = torch.zeros(h, extra, d, device=theta.device)
    return torch.cat([zeros, ang], dim=1)


def lrpe_forward(x, theta, shape, extra):
    """x [b, h, n, d] -> [b, h, n, 2d]: x*cos(ang), x*sin(ang)."""
    ang = lrpe_angles(theta, shape, extra, x.shape[-1])
    xf = x.float()
    return torch.cat([xf * torch.cos(ang), xf * torch.sin(ang)], dim=-1).to(x.dtype)


def lrpe_backward(dout, theta, shape, extra, angles=None):
    """dx = dout[..:d] cos(ang) + dout[..d:] sin(ang); angles: a cache, else recomputed."""
    d = dout.shape[-1] // 2
    ang = angles if angles is not None else lrpe_angles(theta, shape, extra, d)
    g = dout.float()
    return (g[..., :d] * torch.cos(ang) + g[..., d:] * torch.sin(ang)).to(dout.dtype)
