"""Gated PixelCNN over code maps, and resampling of unlikely codes.

van den Oord et al., "Conditional Image Generation with PixelCNN Decoders"
(NeurIPS 2016): a vertical stack sees the rows above, a horizontal stack
the codes to the left in the current row, so the prediction of a code
depends on every code before it in raster order (no blind spot) and on no
other. Each layer computes ``tanh(W_f * x) * sigmoid(W_g * x)``; the
vertical stack feeds the horizontal one through a 1x1 convolution after a
one-row shift, and the horizontal stack is residual.
"""
from typing import List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS


def _gate(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=1)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedMaskedLayer(nn.Module):
    """One gated layer with a vertical and a horizontal stack.

    Args:
        channels: channels of both stacks.
        kernel_size: odd width of the vertical kernel (its height and the
            horizontal kernel's width are ``kernel_size // 2 + 1``).
        first: the first layer must not see the current code: its
            horizontal input is shifted one position right and it has no
            residual connection.
    """

    def __init__(self, channels: int, kernel_size: int, first: bool):
        super().__init__()
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f'GatedMaskedLayer: kernel_size must be odd, got {kernel_size}')
        self.half, self.first = kernel_size // 2, first
        self.v_conv = nn.Conv2d(channels, 2 * channels, (self.half + 1, kernel_size))
        self.v_to_h = nn.Conv2d(2 * channels, 2 * channels, 1)
        self.h_conv = nn.Conv2d(channels, 2 * channels, (1, self.half + 1))
        self.h_out = nn.Conv2d(channels, channels, 1)

    def forward(self, v: torch.Tensor, h: torch.Tensor):
        """Vertical and horizontal inputs (B, C, H, W) -> the layer's outputs."""
        rows, cols = v.shape[-2:]
        k = self.half
        # vertical: rows i-k..i, columns j-k..j+k
        v_pre = self.v_conv(F.pad(v, (k, k, k, 0)))  # (B, 2C, H, W)
        # row i of the horizontal stack sees the vertical stack of row i-1 only
        v_down = F.pad(v_pre, (0, 0, 1, 0))[:, :, :rows]
        h_in = F.pad(h, (1, 0))[..., :cols] if self.first else h
        h_pre = self.h_conv(F.pad(h_in, (k, 0, 0, 0))) + self.v_to_h(v_down)  # (B, 2C, H, W)
        h_new = self.h_out(_gate(h_pre))
        return _gate(v_pre), (h_new if self.first else h + h_new)

    def forward_row(self, v_window: torch.Tensor, h_row: torch.Tensor,
                    v_pre_above: torch.Tensor
                    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Row ``i`` of :meth:`forward` from the rows it depends on.

        Args:
            v_window: (B, C, k+1, W) the vertical input at rows ``i-k..i``
                (zeros above the first row), ``k = kernel_size // 2``.
            h_row: (B, C, 1, W) the horizontal input at row ``i``.
            v_pre_above: (B, 2C, 1, W) this layer's vertical pre-activation at
                row ``i-1`` (zeros for the first row).

        Returns:
            The vertical and horizontal outputs at row ``i`` (B, C, 1, W) and
            the vertical pre-activation at row ``i`` (B, 2C, 1, W).
        """
        k, cols = self.half, h_row.shape[-1]
        v_pre = self.v_conv(F.pad(v_window, (k, k, 0, 0)))  # (B, 2C, 1, W)
        h_in = F.pad(h_row, (1, 0))[..., :cols] if self.first else h_row
        h_pre = self.h_conv(F.pad(h_in, (k, 0, 0, 0))) + self.v_to_h(v_pre_above)
        h_new = self.h_out(_gate(h_pre))
        return _gate(v_pre), (h_new if self.first else h_row + h_new), v_pre


@MODELS.register_module()
class GatedPixelCNN(BaseModule):
    """Autoregressive prior over (B, h, w) maps of codes in ``[0, num_codes)``.

    The logits at position (i, j) depend only on the codes at positions
    before (i, j) in raster order, so ``log p(codes) = sum_i log p(c_i |
    c_<i)`` is exact and computed in one pass.

    Args:
        num_codes: size of the code alphabet (the codebook size).
        channels: channels of the stacks.
        num_layers: gated layers (the first one excludes the current code).
        kernel_size: odd kernel width.
        hidden: channels of the 1x1 output head.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Kaiming', layer='Conv2d')`` or ``dict(type='Pretrained',
            checkpoint=PATH, prefix='prior.')``); None keeps the default.
    """

    def __init__(self, num_codes: int = 512, channels: int = 64, num_layers: int = 8,
                 kernel_size: int = 5, hidden: int = 256,
                 init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'GatedPixelCNN: num_layers must be >= 1, got {num_layers}')
        self.num_codes = int(num_codes)
        self.embed = nn.Embedding(num_codes, channels)
        self.layers = nn.ModuleList(GatedMaskedLayer(channels, kernel_size, i == 0)
                                    for i in range(num_layers))
        self.head = nn.Sequential(nn.ReLU(), nn.Conv2d(channels, hidden, 1), nn.ReLU(),
                                  nn.Conv2d(hidden, num_codes, 1))

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) long codes -> (B, K, h, w) logits of each position's code."""
        x = self.embed(codes).permute(0, 3, 1, 2)  # (B, C, h, w)
        v = h = x
        for layer in self.layers:
            v, h = layer(v, h)
        return self.head(h)

    def row_cache(self, batch: int, rows: int, cols: int) -> 'PixelCNNRowCache':
        """An empty :class:`PixelCNNRowCache` for row-by-row evaluation."""
        return PixelCNNRowCache(self, batch, rows, cols)

    def row_logits(self, cache: 'PixelCNNRowCache', codes_row: torch.Tensor,
                   row: int, index: Optional[torch.Tensor] = None) -> torch.Tensor:
        """The logits of row ``row`` from its codes and the rows above.

        The layers' activations of the rows above come from ``cache`` (filled
        by the calls for those rows, in order); this row's are written into
        it, replacing those of an earlier call for the same row. Equal to
        ``self(codes)[:, :, row]`` when the cached rows hold ``codes``' rows
        above (up to float rounding), at about one row's cost.

        Args:
            cache: from :meth:`row_cache`.
            codes_row: (B, W) the row's codes, or (S, W) those of the cached
                images ``index``.
            row: its index.
            index: (S,) which of the cache's images the codes are (None:
                all).

        Returns:
            (B, K, W) logits (or (S, K, W)).
        """
        k = cache.k
        pick = slice(None) if index is None else index
        x = self.embed(codes_row[:, None]).permute(0, 3, 1, 2)  # (B, C, 1, W)
        v = h = x
        for layer, v_in, v_pre in zip(self.layers, cache.v_in, cache.v_pre):
            v_in[pick, :, row + k] = v[:, :, 0]
            v, h, pre = layer.forward_row(v_in[pick, :, row:row + k + 1], h,
                                          v_pre[pick, :, row:row + 1])
            v_pre[pick, :, row + 1] = pre[:, :, 0]
        return self.head(h)[:, :, 0]

    def log_prob(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) codes -> (B, h, w) ``log p(c_i | c_<i)`` of every code."""
        logp = F.log_softmax(self(codes).float(), dim=1)  # (B, K, h, w)
        return logp.gather(1, codes[:, None]).squeeze(1)

    def loss(self, codes: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood per code (nats), the training loss."""
        return F.cross_entropy(self(codes).float(), codes)


class PixelCNNRowCache:
    """Per layer of a :class:`GatedPixelCNN`, the vertical inputs and
    pre-activations of the rows evaluated so far (zeros above the first row).

    Args:
        prior: the PixelCNN.
        batch, rows, cols: size of the code maps.
    """

    def __init__(self, prior: 'GatedPixelCNN', batch: int, rows: int, cols: int):
        first = prior.layers[0]
        self.k = first.half
        channels = prior.embed.embedding_dim
        weight = first.v_conv.weight
        self.v_in = [weight.new_zeros(batch, channels, rows + self.k, cols)
                     for _ in prior.layers]  # (B, C, k + rows, W)
        self.v_pre = [weight.new_zeros(batch, 2 * channels, rows + 1, cols)
                      for _ in prior.layers]  # (B, 2C, 1 + rows, W)


#: the solvers of :func:`resample_codes`
SOLVERS = ('incremental', 'parallel', 'sequential')


def resample_codes(prior: nn.Module, codes: torch.Tensor, mask: torch.Tensor,
                   mode: str = 'sample', seed: int = 0, solver: str = 'incremental'
                   ) -> torch.Tensor:
    """Replace the masked codes by draws from the prior, in raster order.

    Each masked code is drawn given the codes before it as already restored,
    so later draws see earlier replacements. Sampling is the Gumbel-max trick
    with noise (h, w, K) drawn from ``seed`` once per call and shared by the
    images of the batch, so an image's result depends neither on the batch
    it comes in nor on the order. With the noise fixed, every masked code is
    a deterministic function of the codes before it, so the result is the
    unique fixed point of "redraw every masked code from the current map".

    Three solvers reach it (the prior must be causal and treat images
    independently, as ``GatedPixelCNN``):

    - ``'incremental'`` (default; a prior with ``row_cache`` and
      ``row_logits``, as :class:`GatedPixelCNN`): row by row, top to bottom,
      each row's layer activations computed once from the cached rows above
      (final by then) and the row's own codes, the masked codes of the row
      redrawn until the row stops changing (at most one pass more than the
      row has masked codes); each pass costs one row of the network for the
      images whose row is still changing.

    - ``'sequential'``: the prior runs once per raster position that is
      masked in any image, on the images masked there and the rows up to
      that position only.
    - ``'parallel'``: Jacobi iteration (fixed-point decoding): the
      prior runs on the whole map of the images still changing and redraws
      every masked code at once, until an iteration changes nothing. After
      ``t`` iterations at least the first ``t`` masked codes are final, so it
      stops after at most one pass more than there are masked codes, and
      usually after a few, with the same codes as the sequential solver
      (float rounding aside: the two evaluate the prior on maps of other
      sizes, so near-ties could in principle resolve differently; the tests
      compare them).

    Args:
        prior: maps (B, h, w) codes to (B, K, h, w) logits, causal.
        codes: (B, h, w) long codes.
        mask: (B, h, w) bool, True where a code is to be resampled.
        mode: ``'sample'`` (draw from the prior) or ``'argmax'`` (take the
            most likely code).
        seed: seed of the sampling noise.
        solver: ``'incremental'``, ``'parallel'`` or ``'sequential'``.

    Returns:
        (B, h, w) codes, equal to ``codes`` wherever ``mask`` is False.
    """
    if mode not in ('sample', 'argmax'):
        raise ValueError(f"resample_codes: mode must be 'sample' or 'argmax', got {mode!r}")
    if solver not in SOLVERS:
        raise ValueError(f'resample_codes: solver must be one of {SOLVERS}, got {solver!r}')
    if solver == 'incremental' and not hasattr(prior, 'row_logits'):
        raise ValueError(f"resample_codes: the 'incremental' solver evaluates the prior row "
                         f'by row (row_cache / row_logits, as GatedPixelCNN); '
                         f"{type(prior).__name__} has none: use solver='parallel'")
    if mask.shape != codes.shape:
        raise ValueError(f'resample_codes: mask {tuple(mask.shape)} and codes '
                         f'{tuple(codes.shape)} differ in shape')
    out = codes.clone()
    _, h, w = codes.shape
    positions = mask.flatten(1).any(0).nonzero().flatten().tolist()
    if not positions:
        return out
    noise: Optional[torch.Tensor] = None
    if mode == 'sample':
        gen = torch.Generator(device='cpu').manual_seed(int(seed))
        k = getattr(prior, 'num_codes', None)
        uniform = torch.rand(h, w, k, generator=gen).clamp(1e-12, 1 - 1e-7)
        noise = -torch.log(-torch.log(uniform)).to(codes.device)  # (h, w, K) Gumbel
    if solver == 'parallel':
        return _resample_parallel(prior, out, mask, noise)
    if solver == 'incremental':
        return _resample_incremental(prior, out, mask, noise)
    for p in positions:  # sequential by nature of the prior
        i, j = divmod(p, w)
        sel = mask[:, i, j].nonzero().flatten()  # images resampled here
        # causal: rows below i do not change row i's logits, and images are independent
        logits = prior(out[sel, :i + 1])[:, :, i, j].float()  # (S, K)
        if noise is not None:
            logits = logits + noise[i, j]
        out[sel, i, j] = logits.argmax(1)
    return out


def _resample_parallel(prior: nn.Module, out: torch.Tensor, mask: torch.Tensor,
                       noise: Optional[torch.Tensor]) -> torch.Tensor:
    """Jacobi iteration of :func:`resample_codes`: (B, h, w) codes, in place."""
    active = mask.flatten(1).any(1).nonzero().flatten()  # images with masked codes
    bound = int(mask.flatten(1).sum(1).max()) + 1  # passes that suffice
    for _ in range(bound):
        logits = prior(out[active]).float()  # (A, K, h, w)
        if noise is not None:
            logits = logits + noise.permute(2, 0, 1)[None]
        drawn = logits.argmax(1)  # (A, h, w)
        m = mask[active]
        new = torch.where(m, drawn, out[active])
        changed = (new != out[active]).flatten(1).any(1)  # (A,)
        out[active] = new
        if not changed.any():
            break
        active = active[changed]  # an image that did not change is at its fixed point
    return out


def _resample_incremental(prior: nn.Module, out: torch.Tensor, mask: torch.Tensor,
                          noise: Optional[torch.Tensor]) -> torch.Tensor:
    """Row-by-row solver of :func:`resample_codes`: (B, h, w) codes, in place."""
    active = mask.flatten(1).any(1).nonzero().flatten()  # images with masked codes
    rows = int(mask.any(2).any(0).nonzero().max()) + 1  # down to the last masked row
    codes = out[active, :rows].clone()  # (A, rows, w)
    masked = mask[active, :rows]
    cache = prior.row_cache(codes.shape[0], rows, codes.shape[2])
    everyone = torch.arange(codes.shape[0], device=codes.device)
    for i in range(rows):
        bound = int(masked[:, i].sum(1).max()) + 1  # passes that suffice
        todo = everyone  # images whose row i is to be (re)evaluated
        for _ in range(bound + 1):
            logits = prior.row_logits(cache, codes[todo, i], i, todo).float()  # (T, K, w)
            if noise is not None:
                logits = logits + noise[i].t()[None]
            current = codes[todo, i]
            new = torch.where(masked[todo, i], logits.argmax(1), current)  # (T, w)
            changed = (new != current).any(1)  # (T,)
            if not changed.any():
                break  # every image at its fixed point: the cache holds row i
            todo = todo[changed]  # the others' cached activations are final
            codes[todo, i] = new[changed]
        else:
            raise RuntimeError(f'resample_codes: row {i} did not settle in {bound + 1} passes')
    out[active, :rows] = codes
    return out
