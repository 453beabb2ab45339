"""Synthetic anomalies for self-supervised training: Perlin-noise shapes,
offline texture sources and the DRAEM and CutPaste anomaly kinds (the pipeline
transform is :class:`~anomaly_plugin.datasets.transforms.SynthesizeAnomaly`)."""
from .anomalies import (
    KINDS,
    CutPasteAnomaly,
    PerlinAnomaly,
    ScarAnomaly,
    build_anomaly_kind,
    color_jitter,
)
from .perlin import fractal_noise, perlin_mask, perlin_noise
from .textures import (
    FolderTexture,
    ProceduralTexture,
    SelfTexture,
    augment_texture,
    build_texture_source,
)

__all__ = [
    'KINDS', 'CutPasteAnomaly', 'PerlinAnomaly', 'ScarAnomaly', 'build_anomaly_kind',
    'color_jitter',
    'fractal_noise', 'perlin_mask', 'perlin_noise', 'FolderTexture', 'ProceduralTexture',
    'SelfTexture', 'augment_texture', 'build_texture_source'
]
