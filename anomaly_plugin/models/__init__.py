from .backbones import *  # noqa: F401,F403
from .data_preprocessors import *  # noqa: F401,F403
from .detectors import *  # noqa: F401,F403
from .generative import *  # noqa: F401,F403
from .heads import *  # noqa: F401,F403
from .losses import *  # noqa: F401,F403
from .memory import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
from .postprocess import AnomalyPostProcessor
from .priors import *  # noqa: F401,F403
