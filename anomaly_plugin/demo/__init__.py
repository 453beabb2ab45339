"""The demo data: an MVTec-AD-style set built offline from texture photographs
shipped with scikit-image, with synthetic defects whose masks are exact."""
from .data import (
           TEXTURES,
           build_demo_dataset,
           generate_category,
           load_texture,
           sample_tiles,
           split_rows,
)
from .defects import DEFECT_TYPES, MIN_CHANGE, paint_defect

__all__ = ['DEFECT_TYPES', 'MIN_CHANGE', 'TEXTURES', 'build_demo_dataset', 'generate_category',
           'load_texture', 'paint_defect', 'sample_tiles', 'split_rows']
