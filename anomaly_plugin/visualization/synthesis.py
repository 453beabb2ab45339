"""Sample panels of the synthetic-anomaly generator."""
from typing import Dict, Sequence

import cv2
import numpy as np

from anomaly_plugin.datasets.transforms import SynthesizeAnomaly


def synthesis_panel(image: np.ndarray, kinds: Dict[str, dict], samples: int = 4,
                    seed: int = 0, outline: Sequence[int] = (255, 0, 0)) -> np.ndarray:
    """One row per kind: the kind's name, then ``samples`` draws on ``image``,
    each with the outline of its mask.

    Args:
        image: (H, W, 3) uint8 RGB normal image.
        kinds: row name -> kind config (as in :class:`SynthesizeAnomaly`).
        samples: draws per kind (sample indices 0, 1, ...).
        seed: base seed.
        outline: RGB colour of the mask outlines.

    Returns:
        (rows * H, (samples + 1) * W, 3) uint8 RGB panel.
    """
    h, w = image.shape[:2]
    rows = []
    for name, kind in kinds.items():
        t = SynthesizeAnomaly(kinds=[kind], prob=1.0, seed=seed)
        label = np.full((h, w, 3), 32, np.uint8)
        cv2.putText(label, name, (4, h // 2), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 255), 1, cv2.LINE_AA)
        tiles = [label]
        for i in range(samples):
            r = t(dict(img=image.copy(), sample_idx=i))
            tile = np.ascontiguousarray(r['img'])
            contours, _ = cv2.findContours(r['gt_mask'], cv2.RETR_EXTERNAL,
                                           cv2.CHAIN_APPROX_NONE)
            cv2.drawContours(tile, contours, -1, tuple(int(c) for c in outline), 1)
            tiles.append(tile)
        rows.append(np.concatenate(tiles, 1))
    return np.concatenate(rows, 0)
