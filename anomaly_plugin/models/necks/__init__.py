from .feature_clustering import FeatureClustering, cluster_distances, cluster_loss
from .memae import MemoryModule, hard_shrink_relu

__all__ = ['FeatureClustering', 'MemoryModule', 'cluster_distances', 'cluster_loss',
           'hard_shrink_relu']
