"""Inference on image files and arrays from a config and a checkpoint, and the
survey of several configs on one data set (:func:`run_survey`).

:class:`AnomalyInferencer` (MMEngine's inferencer protocol, registered in
``INFERENCERS``) does the work; :func:`inference_results` and
:func:`inference` are short-cuts on a model from :func:`init_detector`.
"""
from .inference import (
    InferenceResult,
    build_inference_pipeline,
    checkpoint_error_message,
    init_detector,
    list_images,
    load_input,
    map_to_original,
)
from .inferencer import AnomalyInferencer
from .inputs import InferenceBatch, InputPipeline
from .shortcuts import inference, inference_results
from .survey import run_survey, select_methods, shipped_methods

__all__ = ['AnomalyInferencer', 'InferenceBatch', 'InferenceResult', 'InputPipeline',
           'build_inference_pipeline', 'checkpoint_error_message', 'inference',
           'inference_results', 'init_detector', 'list_images', 'load_input',
           'map_to_original', 'run_survey', 'select_methods', 'shipped_methods']
