from .feature_clustering import FeatureClustering, cluster_distances, cluster_loss
from .latent_editing import LatentKMeansEditor
from .memory_module import MemoryModule, hard_shrink_relu
from .vector_quantizer import VectorQuantizer, nearest_codes

__all__ = ['FeatureClustering', 'LatentKMeansEditor', 'MemoryModule', 'VectorQuantizer',
           'cluster_distances', 'cluster_loss', 'hard_shrink_relu', 'nearest_codes']
