"""Writing inference results: output names, result rows, CSV and JSON files.

Used by ``tools/infer.py`` and :class:`~anomaly_plugin.apis.AnomalyInferencer`.

Names of files on Linux may hold any bytes but ``/`` and NUL. Every name
written to a result file or used for an output is printable UTF-8 text
(:func:`~anomaly_plugin.datasets.image_io.display_path`: bytes that are not
UTF-8 become ``\\xNN``), and an output's file name always fits the 255-byte
limit of common file systems (:func:`fit_name`).
"""
import csv
import hashlib
import json
import math
import os
import os.path as osp
from typing import List, Optional, Sequence

import numpy as np

from anomaly_plugin.datasets.image_io import display_path
from anomaly_plugin.visualization import colorize, colour_scale
from anomaly_plugin.visualization.visualizer import write_image

#: columns of results.csv (and keys of the results.json rows)
FIELDS = ('image', 'score', 'norm_score', 'decision', 'heatmap', 'mask', 'error', 'warning')
#: the longest suffix an output adds to its name (``<name>_heatmap.png``)
LONGEST_SUFFIX = len('_heatmap.png')
#: bytes a file name may have (NAME_MAX of ext4, XFS, btrfs, ...)
NAME_MAX = 255


def fit_name(name: str, suffix_bytes: int = LONGEST_SUFFIX) -> str:
    """A file name that still fits :data:`NAME_MAX` bytes with a suffix added.

    Args:
        name: one path component (printable text).
        suffix_bytes: bytes that will be appended to it.

    Returns:
        ``name`` when ``name`` + suffix fits; otherwise its beginning (cut at
        a character boundary) + ``'~'`` + 12 hex digits of its SHA-1, so two
        long names stay apart and a name always gives the same output.
    """
    raw = name.encode('utf-8', 'surrogateescape')
    if len(raw) + suffix_bytes <= NAME_MAX:
        return name
    digest = hashlib.sha1(raw).hexdigest()[:12]
    keep = NAME_MAX - suffix_bytes - len(digest) - 1
    head = raw[:keep].decode('utf-8', 'ignore')  # drops a cut multi-byte character
    return f'{head}~{digest}'


def output_names(items: Sequence, root: Optional[str] = None) -> List[str]:
    """Names for the outputs of inputs, distinct from each other.

    Args:
        items: file paths, or other inputs (arrays), in order.
        root: the folder names are relative to; None: the deepest folder
            common to all file inputs.

    Returns:
        Per input, its path relative to ``root`` with its extension
        (``sub/a.jpg``), printable (:func:`display_path`) and each part fit to
        :data:`NAME_MAX` with a suffix (:func:`fit_name`); ``'%08d' % index``
        for an input that is not a path; a name taken already (the same file
        twice) gets ``_<index>`` added.
    """
    paths = [os.fspath(i) if isinstance(i, (str, os.PathLike)) else None for i in items]
    files = [p for p in paths if p is not None]
    if root is None and files:
        root = osp.commonpath([osp.dirname(osp.abspath(p)) for p in files])
    names, taken = [], set()
    for index, path in enumerate(paths):
        if path is None:
            name = f'{index:08d}'
        else:
            rel = osp.normpath(osp.relpath(osp.abspath(path), osp.abspath(root)))
            if rel.startswith(os.pardir):
                rel = osp.basename(path)
            name = '/'.join(fit_name(display_path(part)) for part in rel.split(os.sep))
        if name in taken:
            name = fit_name(f'{name}_{index}')
        taken.add(name)
        names.append(name)
    return names


def decision(pred: dict, post) -> str:
    """``'NG'``/``'OK'`` of a calibrated prediction, ``'n/a'`` without a threshold."""
    if not post.has_threshold:
        return 'n/a'
    return 'NG' if pred['pred_label'] else 'OK'


def write_outputs(name: str, out_dir: str, amap: np.ndarray, post,
                  mask: Optional[np.ndarray] = None, save_map: bool = False) -> dict:
    """Write the heat-map (and mask, raw map) of one image.

    Args:
        name: from :func:`output_names`.
        out_dir: output folder.
        amap: (H, W) scores at the image's size.
        post: the model's postprocessor (colour scale).
        mask: (H, W) 0/1, written as 0/255 when given.
        save_map: also write ``<name>_map.npy`` (float32).

    Returns:
        ``dict(heatmap=..., mask=...)``: the written files relative to
        ``out_dir`` (``mask`` None when not written).
    """
    heatmap = f'{name}_heatmap.png'
    write_image(osp.join(out_dir, heatmap),
                colorize(amap, *colour_scale(post, float(amap.min()), float(amap.max()))))
    if save_map:
        np.save(osp.join(out_dir, f'{name}_map.npy'), amap.astype(np.float32))
    written = dict(heatmap=heatmap, mask=None)
    if mask is not None:
        written['mask'] = f'{name}_mask.png'
        write_image(osp.join(out_dir, written['mask']), mask.astype(np.uint8) * np.uint8(255))
    return written


def score_row(pred: dict, name: str, out_dir: str, post) -> dict:
    """Write the heat-map (and mask) of one prediction; return its row.

    Args:
        pred: the inferencer's prediction for the image (a dict with
            ``img_path``, ``pred_score``, ``anomaly_map`` at the image's size,
            and when calibrated ``pred_label``, ``norm_score``, ``pred_mask``).
        name: from :func:`output_names`.
        out_dir: output folder.
        post: the model's postprocessor (calibration).

    Returns:
        The image's result row (keys: :data:`FIELDS`); an error row when its
        outputs cannot be written (the message says why).
    """
    try:
        written = write_outputs(name, out_dir, pred['anomaly_map'], post,
                                pred.get('pred_mask') if post.has_threshold else None)
    except (OSError, ValueError) as e:  # one file's outputs must not stop the others
        return error_row(pred['img_path'], f'cannot write its outputs: {e}')
    return dict(image=display_path(pred['img_path']), score=pred['pred_score'],
                norm_score=pred.get('norm_score'), decision=decision(pred, post),
                error=None, warning=pred.get('warning'), **written)


def error_row(img_path, err) -> dict:
    """The result row of an input that could not be scored.

    Args:
        img_path: the file (None for an array).
        err: an exception or its message.
    """
    message = ' '.join(str(err).split()) or type(err).__name__
    return dict(image=None if img_path is None else display_path(img_path), score=None,
                norm_score=None, decision='error', heatmap=None, mask=None,
                error=display_path(message), warning=None)


def _json_value(value):
    """A value JSON can hold: numpy scalars as Python numbers, NaN and
    infinities as None, text as printable text."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, str):
        return display_path(value)
    return value


class ResultsWriter:
    """Write result rows to ``results.csv`` as they come, ``results.json`` at the end.

    A context manager: entering opens the CSV file and writes its header;
    :meth:`write` appends a row and flushes it; leaving (also through an
    exception) closes the CSV file and writes every row to
    ``results.json`` (through a temporary file, so results.json is either
    the previous complete file or the new complete one, always valid JSON).

    Args:
        out_dir: output folder (created if missing).
        fields: the columns.
    """

    def __init__(self, out_dir: str, fields: Sequence[str] = FIELDS):
        self.out_dir = out_dir
        self.fields = tuple(fields)
        self.rows = []
        self._file = self._writer = None

    def __enter__(self) -> 'ResultsWriter':
        os.makedirs(self.out_dir, exist_ok=True)
        self._file = open(osp.join(self.out_dir, 'results.csv'), 'w', newline='',
                          encoding='utf-8')
        self._writer = csv.DictWriter(self._file, fieldnames=self.fields)
        self._writer.writeheader()
        self._file.flush()
        return self

    def write(self, row: dict) -> None:
        """Append ``row`` (keys: the fields; None is written as empty)."""
        row = {k: _json_value(row.get(k)) for k in self.fields}
        self.rows.append(row)
        self._writer.writerow(row)
        self._file.flush()

    def __exit__(self, *exc) -> None:
        self._file.close()
        path = osp.join(self.out_dir, 'results.json')
        with open(path + '.tmp', 'w', encoding='utf-8') as f:
            json.dump(self.rows, f, indent=2, ensure_ascii=False, allow_nan=False)
        os.replace(path + '.tmp', path)


__all__ = ['FIELDS', 'ResultsWriter', 'decision', 'error_row', 'fit_name',
           'output_names', 'score_row', 'write_outputs']
