"""Build a small MVTec-AD-style demo data set from texture photographs.

The three gray texture photographs shipped inside scikit-image (``brick``,
``grass`` and ``gravel``, 512x512 uint8, no download needed) are cut into
square tiles. Training tiles come from the top rows of a photograph and test
tiles from the disjoint bottom rows, so no test tile shares a pixel with a
training tile. Part of the test tiles receive a synthetic defect whose
ground-truth mask is exactly the set of pixels the defect changed: every pixel
outside the mask keeps its original value and every pixel inside it changes by
at least ``MIN_CHANGE`` gray levels.

Layout written per category (as in MVTec AD)::

    <out_dir>/<category>/train/good/000.png
    <out_dir>/<category>/test/good/000.png
    <out_dir>/<category>/test/<defect_type>/000.png
    <out_dir>/<category>/ground_truth/<defect_type>/000_mask.png   # 0 / 255

plus ``<out_dir>/meta.json`` (parameters, counts and the photograph box of
every tile) and ``<out_dir>/README.txt``. Images are single-channel PNGs.

Command line: ``python tools/demo_data.py OUT_DIR [--seed S] [--tile T]``
(``tools/demo.py`` builds it too, then trains and tests on it).
"""
import json
import os
import os.path as osp
import shutil
import time
import zlib

import cv2
import numpy as np

from .defects import DEFECT_TYPES, MIN_CHANGE, paint_defect

TEXTURES = ('brick', 'grass', 'gravel')
# Fraction of the photograph rows (from the top) reserved for training tiles.
TRAIN_FRACTION = 0.6
# Orientation-preserving augmentations (keep the brick courses vertical).
AUGMENTATIONS = ('identity', 'hflip', 'vflip', 'rot180')
FORMAT_VERSION = 1

_PHOTO_CACHE = {}


def load_texture(name):
    """Load one texture photograph shipped inside scikit-image.

    Args:
        name (str): One of ``TEXTURES``.

    Returns:
        np.ndarray: (H, W) uint8 gray photograph (a private copy).
    """
    if name not in TEXTURES:
        raise ValueError(f'Unknown demo texture {name!r}; choose from {TEXTURES}.')
    if name not in _PHOTO_CACHE:
        from skimage import data as skdata

        photo = np.asarray(getattr(skdata, name)())
        if photo.ndim == 3:
            photo = cv2.cvtColor(photo, cv2.COLOR_RGB2GRAY)
        if photo.dtype != np.uint8 or photo.ndim != 2:
            raise ValueError(f'scikit-image texture {name!r} is not a gray uint8 '
                             f'image (got {photo.dtype}, shape {photo.shape}).')
        _PHOTO_CACHE[name] = photo
    return _PHOTO_CACHE[name].copy()


def split_rows(height, tile):
    """Row ranges of the training and test regions of a photograph.

    Args:
        height (int): Photograph height in pixels.
        tile (int): Tile side length.

    Returns:
        tuple[tuple[int, int], tuple[int, int]]: ``(train_rows, test_rows)``,
        each a half-open ``(start, stop)`` row interval; they do not overlap.
    """
    split = int(round(height * TRAIN_FRACTION))
    train_rows, test_rows = (0, split), (split, height)
    for name, (start, stop) in (('training', train_rows), ('test', test_rows)):
        if stop - start < tile:
            raise ValueError(f'tile={tile} does not fit the {name} region '
                             f'({stop - start} rows) of a {height}-row photograph.')
    return train_rows, test_rows


def _augment(tile, name):
    """Apply one of ``AUGMENTATIONS`` to a (T, T) tile."""
    if name == 'identity':
        return tile
    if name == 'hflip':
        return tile[:, ::-1]
    if name == 'vflip':
        return tile[::-1, :]
    if name == 'rot180':
        return tile[::-1, ::-1]
    raise ValueError(f'Unknown augmentation {name!r}.')


def sample_tiles(photo, rows, tile, num, rng):
    """Cut randomly placed, randomly flipped tiles from a band of rows.

    Args:
        photo (np.ndarray): (H, W) uint8 photograph.
        rows (tuple[int, int]): Half-open row interval the tiles must lie in.
        tile (int): Tile side length.
        num (int): Number of tiles.
        rng (np.random.Generator): Random generator.

    Returns:
        tuple[np.ndarray, list[dict]]: (N, T, T) uint8 tiles and, per tile,
        ``{'box': [y0, x0, y1, x1], 'augment': str}`` (half-open box in
        photograph coordinates).
    """
    height, width = photo.shape
    start, stop = rows
    if start < 0 or stop > height or stop - start < tile or tile > width:
        raise ValueError(f'Cannot cut {tile}x{tile} tiles from rows {rows} of a '
                         f'{height}x{width} photograph.')
    ys = rng.integers(start, stop - tile + 1, size=num)
    xs = rng.integers(0, width - tile + 1, size=num)
    augs = rng.integers(0, len(AUGMENTATIONS), size=num)
    tiles = np.empty((num, tile, tile), np.uint8)  # (N, T, T)
    records = []
    for i, (y, x, a) in enumerate(zip(ys.tolist(), xs.tolist(), augs.tolist())):
        tiles[i] = _augment(photo[y:y + tile, x:x + tile], AUGMENTATIONS[a])
        records.append({'box': [y, x, y + tile, x + tile],
                        'augment': AUGMENTATIONS[a]})
    return tiles, records


def _category_rng(seed, category):
    """Generator depending only on the seed and the category name."""
    return np.random.default_rng([int(seed), zlib.crc32(category.encode())])


def generate_category(category, tile=128, seed=0, num_train=120, num_test_good=30,
                      num_test_defect=10):
    """Generate one category in memory.

    Args:
        category (str): One of ``TEXTURES``.
        tile (int): Tile side length.
        seed (int): Random seed.
        num_train (int): Number of normal training tiles.
        num_test_good (int): Number of normal test tiles.
        num_test_defect (int): Number of test tiles per defect type.

    Returns:
        dict: ``train`` and ``test_good``: (N, T, T) uint8 arrays;
        ``defects``: {defect_type: {'img', 'mask', 'clean'}} with (N, T, T)
        uint8 arrays; ``records``: {split: list of tile records}, split being
        ``'train'``, ``'test_good'`` or a defect type; ``train_rows`` and
        ``test_rows``: the row intervals of the photograph used.
    """
    photo = load_texture(category)
    train_rows, test_rows = split_rows(photo.shape[0], tile)
    rng = _category_rng(seed, category)
    others = [t for t in TEXTURES if t != category]

    train, train_rec = sample_tiles(photo, train_rows, tile, num_train, rng)
    good, good_rec = sample_tiles(photo, test_rows, tile, num_test_good, rng)
    records = {'train': train_rec, 'test_good': good_rec}
    defects = {}
    for defect_type in DEFECT_TYPES:
        clean, rec = sample_tiles(photo, test_rows, tile, num_test_defect, rng)
        imgs = np.empty_like(clean)  # (N, T, T)
        masks = np.empty_like(clean)  # (N, T, T)
        for i in range(num_test_defect):
            source = None
            if defect_type == 'foreign':
                source_name = others[int(rng.integers(len(others)))]
                source = load_texture(source_name)
                rec[i]['source'] = source_name
            imgs[i], masks[i] = paint_defect(clean[i], defect_type, rng, source)
        defects[defect_type] = {'img': imgs, 'mask': masks, 'clean': clean}
        records[defect_type] = rec
    return {'train': train, 'test_good': good, 'defects': defects,
            'records': records, 'train_rows': list(train_rows),
            'test_rows': list(test_rows)}


def _write_png(path, img):
    if not cv2.imwrite(path, img):
        raise OSError(f'Failed to write image {path}.')


def _write_category(root, data):
    """Write one generated category in the MVTec AD layout under ``root``."""
    def write_split(folder, imgs, records, suffix=''):
        os.makedirs(folder, exist_ok=True)
        for i, img in enumerate(imgs):
            name = f'{i:03d}{suffix}.png'
            _write_png(osp.join(folder, name), img)
            if records is not None:
                records[i]['file'] = osp.relpath(osp.join(folder, name), root)

    rec = data['records']
    write_split(osp.join(root, 'train', 'good'), data['train'], rec['train'])
    write_split(osp.join(root, 'test', 'good'), data['test_good'], rec['test_good'])
    for defect_type, d in data['defects'].items():
        write_split(osp.join(root, 'test', defect_type), d['img'], rec[defect_type])
        write_split(osp.join(root, 'ground_truth', defect_type), d['mask'], None,
                    suffix='_mask')
        for i, r in enumerate(rec[defect_type]):
            r['mask'] = osp.join('ground_truth', defect_type, f'{i:03d}_mask.png')


def _listed_files(out_dir, meta):
    for category, info in meta['categories'].items():
        for records in info['records'].values():
            for r in records:
                yield osp.join(out_dir, category, r['file'])
                if 'mask' in r:
                    yield osp.join(out_dir, category, r['mask'])


def _is_complete(out_dir, meta):
    return all(osp.isfile(p) for p in _listed_files(out_dir, meta))


def build_demo_dataset(out_dir, categories=TEXTURES, tile=128, seed=0, num_train=120,
                       num_test_good=30, num_test_defect=10, overwrite=False):
    """Write the demo data set, or reuse an identical existing one.

    Args:
        out_dir (str): Output folder; one sub-folder per category.
        categories (Sequence[str]): Textures to build, from ``TEXTURES``.
        tile (int): Tile side length (8..204 for the 512-row photographs).
        seed (int): Random seed; equal parameters give identical files.
        num_train (int): Normal training tiles per category.
        num_test_good (int): Normal test tiles per category.
        num_test_defect (int): Test tiles per defect type and category.
        overwrite (bool): Rebuild even if ``out_dir`` already holds a data set.

    Returns:
        dict: The content of ``meta.json`` (``params`` and per-category
        ``categories`` info) plus ``'built'`` (False when an existing identical
        data set was reused), ``'out_dir'`` and, after a build,
        ``'build_seconds'``.
    """
    categories = list(categories)
    for c in categories:
        if c not in TEXTURES:
            raise ValueError(f'Unknown demo category {c!r}; choose from {TEXTURES}.')
    if len(set(categories)) != len(categories) or not categories:
        raise ValueError(f'categories must be non-empty and unique, got {categories}.')
    if int(tile) < 8:
        raise ValueError(f'tile must be at least 8 pixels, got {tile}.')
    for name, n in (('num_train', num_train), ('num_test_good', num_test_good),
                    ('num_test_defect', num_test_defect)):
        if int(n) < 1:
            raise ValueError(f'{name} must be a positive integer, got {n}.')
    params = {'format_version': FORMAT_VERSION, 'categories': categories,
              'tile': int(tile), 'seed': int(seed), 'num_train': int(num_train),
              'num_test_good': int(num_test_good),
              'num_test_defect': int(num_test_defect),
              'defect_types': list(DEFECT_TYPES), 'min_change': MIN_CHANGE}

    meta_path = osp.join(out_dir, 'meta.json')
    old = None
    if osp.isfile(meta_path):
        try:
            with open(meta_path) as f:
                old = json.load(f)
        except (OSError, ValueError) as e:
            if not overwrite:
                raise ValueError(f'{meta_path} is unreadable ({e}); pass '
                                 'overwrite=True to rebuild.') from e
    if old is not None and not overwrite:
        if _covers(old.get('params'), params) and _is_complete(out_dir, old):
            return {**old, 'built': False, 'out_dir': out_dir}
        raise FileExistsError(
            f'{out_dir} holds a demo data set built with other parameters or with '
            f'missing files (see {meta_path}); pass overwrite=True to rebuild.')
    clash = [c for c in categories if osp.exists(osp.join(out_dir, c))]
    if clash and old is None and not overwrite:
        raise FileExistsError(f'{out_dir} already contains {clash} without a '
                              'meta.json; pass overwrite=True to replace them.')

    # Only folders this builder owns are removed.
    stale = set(categories) | set((old or {}).get('categories', {}))
    for c in sorted(stale):
        if c in TEXTURES and osp.isdir(osp.join(out_dir, c)):
            shutil.rmtree(osp.join(out_dir, c))
    if osp.isfile(meta_path):
        os.remove(meta_path)

    start = time.perf_counter()
    os.makedirs(out_dir, exist_ok=True)
    meta = {'params': params, 'categories': {}}
    for c in categories:
        data = generate_category(c, tile, seed, num_train, num_test_good,
                                 num_test_defect)
        _write_category(osp.join(out_dir, c), data)
        counts = {'train/good': int(num_train), 'test/good': int(num_test_good)}
        counts.update({f'test/{d}': int(num_test_defect) for d in DEFECT_TYPES})
        meta['categories'][c] = {'train_rows': data['train_rows'],
                                 'test_rows': data['test_rows'],
                                 'counts': counts, 'records': data['records']}

    _write_readme(out_dir, params)
    # meta.json last: its presence marks a complete build.
    with open(meta_path, 'w') as f:
        json.dump(meta, f, indent=1)
    return {**meta, 'built': True, 'out_dir': out_dir,
            'build_seconds': round(time.perf_counter() - start, 3)}


def _covers(old_params, params):
    """True when a set built with ``old_params`` holds the one ``params`` asks for.

    Categories are generated independently of each other, so a set built with
    more categories and otherwise equal parameters holds the requested ones.
    """
    if not isinstance(old_params, dict):
        return False
    rest = {k: v for k, v in params.items() if k != 'categories'}
    old_rest = {k: v for k, v in old_params.items() if k != 'categories'}
    return rest == old_rest and set(params['categories']) <= set(
        old_params.get('categories', []))


def _write_readme(out_dir, params):
    n_test = params['num_test_good'] + params['num_test_defect'] * len(DEFECT_TYPES)
    lines = [
        'Demo anomaly detection data set (MVTec AD layout).',
        'Built from the scikit-image texture photographs: '
        + ', '.join(params['categories']) + '.',
        f"seed={params['seed']} tile={params['tile']}x{params['tile']} (gray PNG)",
        f"per category: train/good {params['num_train']}, test/good "
        f"{params['num_test_good']}, test/<defect> {params['num_test_defect']} "
        f"each for {', '.join(DEFECT_TYPES)} ({n_test} test images)",
        f'Training tiles come from the top {TRAIN_FRACTION:.0%} of the photograph '
        'rows, test tiles from the remaining rows (no overlap).',
        f'Masks (ground_truth/<defect>/<stem>_mask.png, 0/255) mark exactly the '
        f"pixels changed by the defect (each by >= {params['min_change']} levels).",
        'meta.json lists the photograph box and flip of every tile.',
    ]
    with open(osp.join(out_dir, 'README.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
