from .bank import DynamicBuffersMixin, KNNMemoryBank
from .coreset import covering_radius, greedy_coreset, random_projection
from .kmeans import kmeans, kmeans_plusplus
from .knn import knn
from .patch_gaussian import PatchGaussian
from .pca import FeaturePCA

__all__ = ['DynamicBuffersMixin', 'FeaturePCA', 'KNNMemoryBank', 'PatchGaussian', 'covering_radius',
           'greedy_coreset', 'kmeans', 'kmeans_plusplus', 'random_projection', 'knn']
