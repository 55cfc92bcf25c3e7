"""``make_mobile`` composed with the export: a model name that has no export yet is exported on the way.

``deploy.mobile.make_mobile`` takes the export as a function because deploy sits under pipeline and never imports
it; this is where the two meet, for the CLI and the public ``edgecnn.make_mobile``.
"""

from __future__ import annotations

import os

from ..deploy.mobile import MobileResult
from ..deploy.mobile import make_mobile as _make_mobile
from .compose import export


def make_mobile(src: str | os.PathLike, out_dir: str | os.PathLike | None = None, **options) -> MobileResult:
    """``edgecnn.deploy.mobile.make_mobile`` (same arguments), exporting a model name with ``export`` if needed."""
    options.setdefault("export_fn", export)
    return _make_mobile(src, out_dir, **options)
