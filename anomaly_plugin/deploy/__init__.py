"""Deployment: ONNX export of detectors."""
from .onnx_export import ExportWrapper, check_exportable, export_onnx

__all__ = ['ExportWrapper', 'check_exportable', 'export_onnx']
