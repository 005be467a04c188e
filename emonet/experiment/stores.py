"""The feature store a run reads: an existing ``.h5`` store, or a dataset folder extracted (resumably)."""

import dataclasses
import logging
from pathlib import Path

from preprocessing.datasets import build_manifest
from preprocessing.errors import StoreError
from preprocessing.extraction import ExtractParams
from preprocessing.runner import run_extraction

logger = logging.getLogger(__name__)


def extract_folder(root, store, cfg, *, layout=None, splits=None, params=None):
    """Extract (resumably) the clips of dataset folder ``root`` into ``store`` with ``cfg``'s settings.

    Parameters
    ----------
    root, store : pathlib.Path
    cfg : emonet.experiment.config.RunConfig
        Its ``extract`` section and ``data.workers`` are used.
    layout : str, optional
        Folder layout (default: ``cfg.data.layout``).
    splits : set of str, optional
        Only these splits (default: all).
    params : preprocessing.extraction.ExtractParams, optional
        Extraction settings instead of ``cfg.extract``'s.

    Returns
    -------
    pathlib.Path
        ``store``.
    """
    store.parent.mkdir(parents=True, exist_ok=True)
    manifest = build_manifest(root, layout=layout or cfg.data.layout)
    records = [r for r in manifest if splits is None or r.split in splits]
    logger.info(f"feature store {store}: extracting what is missing of {len(records)} clips")
    summary = run_extraction(records, store, params or ExtractParams(**dataclasses.asdict(cfg.extract)),
                             workers=cfg.data.workers)
    logger.info(summary.line(store))
    if summary.failed:
        logger.warning(f"warning: {summary.failed} clips failed extraction and are left out")
    return store


def prepare_store(cfg):
    """The feature store for a run: ``data.root`` itself if it is a store, else extracted (resumably).

    Parameters
    ----------
    cfg : emonet.experiment.config.RunConfig

    Returns
    -------
    pathlib.Path
    """
    root = Path(cfg.data.root)
    if root.suffix == ".h5":
        if not root.is_file():
            raise StoreError(f"{root}: no such feature store")
        return root
    store = Path(cfg.data.store or Path(cfg.output_dir) / f"{root.name}_features.h5")
    return extract_folder(root, store, cfg, splits={cfg.data.train_split, cfg.data.val_split})
