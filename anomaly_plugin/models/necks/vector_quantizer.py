"""Vector quantisation of a latent map (the codebook of a VQ-VAE).

van den Oord, Vinyals and Kavukcuoglu, "Neural Discrete Representation
Learning" (NeurIPS 2017): every latent vector ``z_e`` is replaced by its
nearest codebook entry ``e_k``; gradients pass to the encoder by the
straight-through estimator ``z_e + sg(e_k - z_e)``; the codebook term
``||sg(z_e) - e_k||^2`` moves the entries (or, with ``ema=True``, the
exponential moving averages of the paper's appendix do) and the commitment
term ``beta * ||z_e - sg(e_k)||^2`` keeps the encoder near its entries.
"""
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from mmengine import dist
from mmengine.model import BaseModule
from torch import nn

from anomaly_plugin.registry import MODELS


def nearest_codes(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook entry of every vector.

    Args:
        z: (N, D) vectors.
        codebook: (K, D) entries.

    Returns:
        (N,) long indices (squared Euclidean distance; ties to the lower index).
    """
    dist2 = (z.pow(2).sum(1, keepdim=True) - 2 * z @ codebook.t()
             + codebook.pow(2).sum(1))  # (N, K)
    return dist2.argmin(1)


def _all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    if dist.get_world_size() > 1:
        dist.all_reduce(t, op='sum')
    return t


@MODELS.register_module()
class VectorQuantizer(BaseModule):
    """Codebook with straight-through gradients, optional EMA updates and
    restarts of unused entries.

    Losses are means over the elements (the paper writes squared norms; the
    mean divides them by the code dimension and the number of positions).

    Dead-code restarts: the usage of every entry (number of vectors assigned
    per training batch) is tracked as an exponential moving average
    (``usage_decay``); at each training step the entries whose average usage
    is below ``restart_threshold`` are set to randomly chosen encoder vectors
    of the batch, so every entry is used. With ``data_init`` the whole
    codebook is set that way at the first training step. Under distributed
    training the counts and EMA sums are summed over ranks and the restart
    vectors come from rank 0, so every rank keeps the same codebook.

    Args:
        num_codes: codebook size K.
        code_dim: dimension D of the entries (the encoder's output channels).
        beta: commitment weight (0.25 in the paper).
        ema: update the entries by exponential moving averages of their
            assigned vectors instead of the codebook loss (no gradient).
        decay: EMA decay of the entries (0.99).
        eps: Laplace smoothing of the EMA cluster sizes.
        restart_threshold: average vectors per batch below which an entry
            is restarted; 0 disables restarts.
        usage_decay: decay of the usage average.
        data_init: set the codebook from encoder vectors at the first step.
        init_cfg: MMEngine initialisation config(s) that :meth:`init_weights`
            applies after the default initialisation (e.g.
            ``dict(type='Pretrained', checkpoint=PATH,
            prefix='autoencoder.neck.')``); None keeps the default.
    """

    def __init__(self, num_codes: int = 512, code_dim: int = 64, beta: float = 0.25,
                 ema: bool = False, decay: float = 0.99, eps: float = 1e-5,
                 restart_threshold: float = 1.0, usage_decay: float = 0.99,
                 data_init: bool = True, init_cfg: Optional[Union[dict, List[dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        if num_codes < 2 or code_dim < 1:
            raise ValueError(f'VectorQuantizer: num_codes must be >= 2 and code_dim >= 1, '
                             f'got {num_codes} and {code_dim}')
        if not 0.0 < decay < 1.0 or not 0.0 < usage_decay < 1.0:
            raise ValueError(f'VectorQuantizer: decay and usage_decay must be in (0, 1), got '
                             f'{decay} and {usage_decay}')
        self.num_codes, self.code_dim = int(num_codes), int(code_dim)
        self.beta, self.ema = float(beta), bool(ema)
        self.decay, self.eps = float(decay), float(eps)
        self.restart_threshold, self.usage_decay = float(restart_threshold), float(usage_decay)
        self.data_init = bool(data_init)
        init = torch.empty(num_codes, code_dim).uniform_(-1 / num_codes, 1 / num_codes)
        if self.ema:
            self.register_buffer('codebook', init)  # (K, D), moved by the EMA
            self.register_buffer('ema_size', torch.zeros(num_codes))  # (K,)
            self.register_buffer('ema_sum', init.clone())  # (K, D)
        else:
            self.codebook = nn.Parameter(init)  # (K, D)
        self.register_buffer('usage', torch.zeros(num_codes))  # (K,) vectors per batch
        self.register_buffer('initialized', torch.tensor(not self.data_init))
        #: entries restarted at the last training step
        self.last_restarts = 0

    # -- lookup ---------------------------------------------------------------
    def codes(self, z: torch.Tensor) -> torch.Tensor:
        """(B, D, h, w) latents -> (B, h, w) code indices."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (B*h*w, D)
        return nearest_codes(flat.float(), self.codebook.float()).view(b, h, w)

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """(B, h, w) indices -> (B, D, h, w) entries."""
        return self.codebook[codes].permute(0, 3, 1, 2).contiguous()

    # -- training-time codebook maintenance ------------------------------------
    def _random_vectors(self, flat: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` encoder vectors of the batch (rank 0's), (n, D)."""
        idx = torch.randint(0, flat.shape[0], (n,), device=flat.device)
        picked = flat[idx].detach().float().contiguous()
        if dist.get_world_size() > 1:
            dist.broadcast(picked, src=0)
        return picked

    def _set_entries(self, which: torch.Tensor, vectors: torch.Tensor) -> None:
        with torch.no_grad():
            self.codebook.data[which] = vectors.to(self.codebook.dtype)
            if self.ema:
                self.ema_size[which] = 1.0
                self.ema_sum[which] = vectors

    @torch.no_grad()
    def _maintain(self, flat: torch.Tensor, codes: torch.Tensor) -> None:
        """EMA update, usage tracking and restarts for one training batch."""
        onehot = F.one_hot(codes, self.num_codes).float()  # (N, K)
        counts = _all_reduce_sum(onehot.sum(0))  # (K,)
        world = max(dist.get_world_size(), 1)
        if self.ema:
            sums = _all_reduce_sum(onehot.t() @ flat.float())  # (K, D)
            self.ema_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
            self.ema_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            n = self.ema_size.sum()
            size = (self.ema_size + self.eps) / (n + self.num_codes * self.eps) * n
            self.codebook.copy_(self.ema_sum / size[:, None])
        self.usage.mul_(self.usage_decay).add_(counts / world, alpha=1 - self.usage_decay)
        self.last_restarts = 0
        if self.restart_threshold > 0:
            dead = (self.usage < self.restart_threshold).nonzero().flatten()
            if dead.numel():
                self._set_entries(dead, self._random_vectors(flat, dead.numel()))
                self.usage[dead] = self.usage.mean().clamp_min(self.restart_threshold)
                self.last_restarts = int(dead.numel())

    @torch.no_grad()
    def _initialise(self, flat: torch.Tensor) -> None:
        everything = torch.arange(self.num_codes, device=flat.device)
        self._set_entries(everything, self._random_vectors(flat, self.num_codes))
        if self.ema:
            self.ema_size.fill_(1.0)
        # at the threshold: an entry no vector picks is restarted at the next step
        self.usage.fill_(self.restart_threshold if self.restart_threshold > 0
                         else flat.shape[0] / self.num_codes)
        self.initialized.fill_(True)

    # -- forward ----------------------------------------------------------------
    def forward(self, z: torch.Tensor
                ) -> Tuple[torch.Tensor, torch.Tensor, Dict[str, torch.Tensor]]:
        """Quantise a latent map.

        Args:
            z: (B, D, h, w) encoder output.

        Returns:
            ``z_q`` (B, D, h, w) with straight-through gradients to ``z``, the
            codes (B, h, w) and the losses (``loss_commit``; ``loss_codebook``
            without EMA) plus ``perplexity`` of the batch's code use (logged,
            not optimised).
        """
        b, d, h, w = z.shape
        if d != self.code_dim:
            raise ValueError(f'VectorQuantizer: latent has {d} channels, code_dim is '
                             f'{self.code_dim}')
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)  # (N, D)
        if self.training and not bool(self.initialized):
            self._initialise(flat)
        codes = nearest_codes(flat.detach().float(), self.codebook.float())  # (N,)
        quant = self.codebook[codes].to(z.dtype)  # (N, D), entries before this step's update
        if self.training:
            self._maintain(flat.detach(), codes)
        losses = dict(loss_commit=self.beta * F.mse_loss(flat, quant.detach()))
        if not self.ema:
            losses['loss_codebook'] = F.mse_loss(quant, flat.detach())
        probs = F.one_hot(codes, self.num_codes).float().mean(0)  # (K,)
        losses['perplexity'] = torch.exp(-(probs * (probs + 1e-10).log()).sum())
        st = flat + (quant - flat).detach()  # straight-through
        return (st.view(b, h, w, d).permute(0, 3, 1, 2).contiguous(), codes.view(b, h, w),
                losses)
