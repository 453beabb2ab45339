from .bank import DynamicBuffersMixin, KNNMemoryBank
from .coreset import covering_radius, greedy_coreset, random_projection
from .gaussian import PatchGaussian
from .knn import knn

__all__ = ['DynamicBuffersMixin', 'KNNMemoryBank', 'PatchGaussian', 'covering_radius',
           'greedy_coreset', 'random_projection', 'knn']
