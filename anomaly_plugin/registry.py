"""Registries of the plugin, children of MMEngine's root registries.

Everything registered here has the scope ``anomaly_plugin``, so other
OpenMMLab projects can refer to it as ``type='anomaly_plugin.Name'``.
"""
from mmengine.registry import DATA_SAMPLERS as MMENGINE_DATA_SAMPLERS
from mmengine.registry import DATASETS as MMENGINE_DATASETS
from mmengine.registry import HOOKS as MMENGINE_HOOKS
from mmengine.registry import INFERENCERS as MMENGINE_INFERENCERS
from mmengine.registry import LOOPS as MMENGINE_LOOPS
from mmengine.registry import METRICS as MMENGINE_METRICS
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import OPTIM_WRAPPERS as MMENGINE_OPTIM_WRAPPERS
from mmengine.registry import TRANSFORMS as MMENGINE_TRANSFORMS
from mmengine.registry import VISUALIZERS as MMENGINE_VISUALIZERS
from mmengine.registry import Registry

SCOPE = 'anomaly_plugin'

DATASETS = Registry('dataset', parent=MMENGINE_DATASETS, scope=SCOPE,
                    locations=['anomaly_plugin.datasets'])
DATA_SAMPLERS = Registry('data sampler', parent=MMENGINE_DATA_SAMPLERS,
                         scope=SCOPE, locations=['anomaly_plugin.datasets'])
TRANSFORMS = Registry('transform', parent=MMENGINE_TRANSFORMS, scope=SCOPE,
                      locations=['anomaly_plugin.datasets.transforms'])
MODELS = Registry('model', parent=MMENGINE_MODELS, scope=SCOPE,
                  locations=['anomaly_plugin.models'])
METRICS = Registry('metric', parent=MMENGINE_METRICS, scope=SCOPE,
                   locations=['anomaly_plugin.evaluation'])
HOOKS = Registry('hook', parent=MMENGINE_HOOKS, scope=SCOPE,
                 locations=['anomaly_plugin.engine'])
LOOPS = Registry('loop', parent=MMENGINE_LOOPS, scope=SCOPE,
                 locations=['anomaly_plugin.engine'])
VISUALIZERS = Registry('visualizer', parent=MMENGINE_VISUALIZERS, scope=SCOPE,
                       locations=['anomaly_plugin.visualization'])
OPTIM_WRAPPERS = Registry('optim wrapper', parent=MMENGINE_OPTIM_WRAPPERS,
                          scope=SCOPE, locations=['anomaly_plugin.engine'])
INFERENCERS = Registry('inferencer', parent=MMENGINE_INFERENCERS, scope=SCOPE,
                       locations=['anomaly_plugin.apis'])

# Children without plugin modules of their own, so that building with the
# ``anomaly_plugin`` default scope finds MMEngine's classes without warnings.
_EMPTY_CHILDREN = {}
for _name in ('OPTIMIZERS', 'OPTIM_WRAPPER_CONSTRUCTORS', 'PARAM_SCHEDULERS',
              'MODEL_WRAPPERS', 'WEIGHT_INITIALIZERS', 'LOG_PROCESSORS',
              'VISBACKENDS', 'EVALUATOR', 'RUNNERS', 'RUNNER_CONSTRUCTORS',
              'FUNCTIONS', 'TASK_UTILS', 'STRATEGIES'):
    _parent = getattr(__import__('mmengine.registry', fromlist=[_name]), _name)
    _EMPTY_CHILDREN[_name] = Registry(_parent.name, parent=_parent, scope=SCOPE)
globals().update(_EMPTY_CHILDREN)
