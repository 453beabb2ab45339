"""Models by kind: ``backbones`` (pretrained feature extractors), ``networks``
(every trainable network), ``necks`` (latent modules between an encoder and a
decoder), ``heads`` (on pooled backbone features), ``statistics`` (what fitted
detectors keep of the normal features), ``corruptions``, ``losses``, ``ops``
(parameter-free image operations) and ``detectors`` (the thin models that
compose them)."""
from .backbones import *  # noqa: F401,F403
from .corruptions import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .networks import *  # noqa: F401,F403
from .ops import (
                  NEIGHBOUR_DIRECTIONS,
                  crop_patches,
                  gaussian_blur,
                  gaussian_pyramid,
                  gradient_attention,
                  jitter_pairs,
                  partition_masks,
                  position_pairs,
                  pyr_down,
                  random_patches,
                  spread_patch_scores,
)
from .postprocess import AnomalyPostProcessor
from .statistics import *  # noqa: F401,F403
