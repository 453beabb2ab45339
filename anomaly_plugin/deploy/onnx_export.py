"""ONNX export: a detector as (normalised image batch) -> (anomaly map, image score).

The exported graph is the detector's test-time computation followed by the
post-processor's upsampling, blur and image score, so its outputs equal
``model.predict``'s ``anomaly_map`` and ``pred_score``. Thresholds and
normalisation are not in the graph: they are written beside it as JSON
(``calibration.json``), with the input size and the normalisation the
input must have. Memory banks and Gaussians are stored as constants in the
graph.

Size limits: an ONNX file is a protobuf of at most 2 GB. A graph whose
constants are larger (a PatchCore bank of more than about 500 million
float32 values, e.g. 330,000 patches x 1,536 channels) is written by torch's
exporter with its constants in separate files beside ``model.onnx`` (ONNX
external data); onnxruntime reads them from the same folder, so the folder
is shipped whole. ``calibration.json`` lists those files.

The batch size is fixed at export time (``batch_size``): PatchCore's
chunked nearest-neighbour search is unrolled for it.
"""
import json
import os
import os.path as osp
import warnings
from typing import Dict, Sequence, Tuple

import torch
from torch import nn

#: detectors whose test-time computation cannot be a static graph, and why
NOT_EXPORTABLE = {
    'AnoGAN': 'its score is a gradient-descent search over the latent space at test time',
    'VAE': 'its maps draw posterior samples or take gradients at test time',
}


class ExportWrapper(nn.Module):
    """``forward(inputs)`` -> ``(anomaly_map (B, H, W), score (B,))`` of a detector."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        raw, own_scores = self.model.forward_maps(inputs)  # (B, 1, h, w), (B,) or None
        maps, scores = self.model.postprocessor(raw, inputs.shape[-2:])
        if own_scores is not None:
            scores = own_scores.float()
        return maps, scores


def check_exportable(model: nn.Module) -> None:
    """Raise ``ValueError`` naming the reason when ``model`` cannot be exported."""
    name = type(model).__name__
    if name == 'TiledDetector':
        return check_exportable(model.detector)
    if name in NOT_EXPORTABLE:
        raise ValueError(f'{name} cannot be exported to ONNX: {NOT_EXPORTABLE[name]}')
    if name == 'VQVAEPrior' and model.resample is not None and model.map_type == 'residual':
        raise ValueError(
            'VQVAEPrior with latent resampling cannot be exported to ONNX: resampling is '
            'sequential with a data-dependent number of steps; export with '
            "--cfg-options model.resample=None (plain VQ-VAE) or model.map_type='nll'")


def _constant_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size()
               for t in list(model.parameters()) + list(model.buffers()))


def export_onnx(model: nn.Module, out_dir: str, input_size: Sequence[int],
                batch_size: int = 1, opset: int = 17) -> Dict:
    """Write ``model.onnx`` and ``calibration.json`` into ``out_dir``.

    Args:
        model: a detector (eval mode is set here).
        out_dir: output folder (created).
        input_size: (H, W) of the model input.
        batch_size: fixed batch size of the graph.
        opset: ONNX opset version.

    Returns:
        The metadata written to ``calibration.json``.
    """
    check_exportable(model)
    model = model.eval()
    os.makedirs(out_dir, exist_ok=True)
    path = osp.join(out_dir, 'model.onnx')
    h, w = (int(v) for v in input_size)
    dummy = torch.zeros(batch_size, 3, h, w)
    wrapper = ExportWrapper(model).eval()
    with torch.no_grad(), warnings.catch_warnings():
        # the graph is traced for this input size and batch size on purpose
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        wrapper(dummy)  # fills the models' caches (fused backbones, RIAD's test masks)
        torch.onnx.export(wrapper, (dummy,), path, dynamo=False, opset_version=opset,
                          input_names=['input'], output_names=['anomaly_map', 'score'])
    pre = model.data_preprocessor
    meta = dict(
        model=type(model).__name__,
        onnx='model.onnx',
        input=dict(name='input', shape=[batch_size, 3, h, w], layout='NCHW, RGB',
                   normalisation='(pixel - mean) / std, pixel in 0..255',
                   mean=[float(v) for v in pre.mean.flatten()],
                   std=[float(v) for v in pre.std.flatten()]),
        outputs=dict(anomaly_map=[batch_size, h, w], score=[batch_size]),
        calibration=model.postprocessor.calibration(),
        normalised_outputs=('((x - threshold) / (max - min) + 0.5) clipped to [0, 1]; '
                            'NG where score >= image_threshold'),
        external_data=sorted(f for f in os.listdir(out_dir)
                             if f not in ('model.onnx', 'calibration.json')),
        constant_bytes=_constant_bytes(model))
    with open(osp.join(out_dir, 'calibration.json'), 'w') as f:
        json.dump(meta, f, indent=2)
    return meta
