"""Model artifacts: `<dir>/arrays.npz` (numpy only, loaded with allow_pickle=False) and
`<dir>/meta.json`. Nothing in a model folder can run code; anything malformed is refused with
ModelArtifactError before it can replace a working model."""

from __future__ import annotations

import json
import math
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from recommender.errors import InvalidInput, ModelArtifactError
from recommender.kt.bkt import BKTModel, SkillParams
from recommender.ml.features import FeatureSchema, FeatureSpace
from recommender.ml.model import FactorModel, HybridModel

SCHEMA_VERSION = 1
ARRAYS = "arrays.npz"
META = "meta.json"
_FACTORS = ("user_embeddings", "user_biases", "item_embeddings", "item_biases")
_BKT_FIELDS = ("prior", "learn", "guess", "slip", "forget_per_day", "floor", "item_guess", "item_slip", "item_learn",
               "studied_item_guess", "studied_item_slip")  # fmt: skip
# older artifacts: 6 columns (before item emissions: those keep the defaults), 8 (before
# item_learn: an item result was followed by the skill's `learn`, and still is for them) and 9
# (before the studied pair: every item result was read with the item pair, and still is for them)
_BKT_WIDTHS_BEFORE = (6, 8, 9)


def owner_only_folder(folder: Path) -> None:
    """Create `folder` (and the folders missing above it) readable by its owner only, and narrow
    it if it exists: model folders hold every trained learner's identity vector."""
    missing = [folder, *(p for p in folder.parents if not p.exists())] if not folder.exists() else [folder]
    for f in reversed(missing):
        f.mkdir(mode=0o700, exist_ok=True)
    os.chmod(folder, 0o700)


def save_model(model: HybridModel, directory: Path, extra_meta: Mapping[str, Any] | None = None) -> Path:
    """Write atomically: a folder appears complete or not at all. Folders 0700, files 0600."""
    owner_only_folder(directory.parent)
    staging = _write_staging(model, directory.parent, extra_meta)
    try:
        os.replace(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def rewrite_model(model: HybridModel, directory: Path) -> None:
    """Replace an existing version's files with `model` (same version): the new folder is written
    beside it and swapped in, and the old one, with the rows `model` no longer has, is deleted."""
    staging = _write_staging(model, directory.parent, None)
    trash = directory.parent / f".trash-{directory.name}-{os.getpid()}"
    try:
        os.rename(directory, trash)
        os.rename(staging, directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        shutil.rmtree(trash, ignore_errors=True)


def _write_staging(model: HybridModel, parent: Path, extra_meta: Mapping[str, Any] | None) -> Path:
    skills = sorted(model.bkt.params)
    arrays: dict[str, np.ndarray] = {
        "bkt": np.array(
            [[getattr(model.bkt.params[s], f) for f in _BKT_FIELDS] for s in skills], dtype=np.float64
        ).reshape(len(skills), len(_BKT_FIELDS)),
    }
    pairs = sorted(model.bkt.module_learn)
    arrays["module_learn"] = np.array([model.bkt.module_learn[p] for p in pairs], dtype=np.float64)
    for name, factors in (("success", model.success), ("ranking", model.ranking)):
        for field in _FACTORS:
            arrays[f"{name}_{field}"] = np.asarray(getattr(factors, field), dtype=np.float32)
    meta = {
        "schema_version": SCHEMA_VERSION,
        "version": model.version,
        "use_features": model.use_features,
        "user_features": list(model.user_space.names),
        "item_features": list(model.item_space.names),
        "bkt_skills": skills,
        "module_learn_pairs": [list(p) for p in pairs],  # (module, skill) of each module_learn entry
        "feature_schema": model.features.to_json(),
        **dict(model.meta),
        **dict(extra_meta or {}),
    }
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))  # created 0700
    try:
        np.savez(staging / ARRAYS, **arrays)  # type: ignore[arg-type]
        (staging / META).write_text(json.dumps(meta, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
        for f in (ARRAYS, META):
            os.chmod(staging / f, 0o600)
            with (staging / f).open("rb") as handle:
                os.fsync(handle.fileno())
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def read_meta(directory: Path) -> dict[str, Any]:
    try:
        meta = json.loads((directory / META).read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"{directory}: no {META}; not a model folder") from exc
    except (OSError, ValueError) as exc:
        raise ModelArtifactError(f"{directory}/{META} is unreadable: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelArtifactError(f"{directory}/{META} is not a JSON object")
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise ModelArtifactError(
            f"{directory}: artifact schema {meta.get('schema_version')!r} is not {SCHEMA_VERSION}; "
            "retrain with this version of Luban Path"
        )
    return meta


def load_model(directory: Path) -> HybridModel:
    meta = read_meta(directory)
    try:
        with (directory / ARRAYS).open("rb") as handle, np.load(handle, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except FileNotFoundError as exc:
        raise ModelArtifactError(f"{directory}: {ARRAYS} is missing") from exc
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ModelArtifactError(f"{directory}/{ARRAYS} is corrupt or holds non-numeric data: {exc}") from exc
    try:
        user_names = tuple(str(x) for x in meta["user_features"])
        item_names = tuple(str(x) for x in meta["item_features"])
        skills = [str(s) for s in meta["bkt_skills"]]
        factors = {name: _factors(arrays, name, len(user_names), len(item_names)) for name in ("success", "ranking")}
        bkt = arrays["bkt"]
        widths = (len(_BKT_FIELDS), *_BKT_WIDTHS_BEFORE)
        if bkt.ndim != 2 or bkt.shape[0] != len(skills) or bkt.shape[1] not in widths or not np.isfinite(bkt).all():
            raise ModelArtifactError(f"bkt array has shape {bkt.shape}, expected {(len(skills), len(_BKT_FIELDS))}")
        params = {s: _skill_params(row) for s, row in zip(skills, bkt, strict=True)}
        module_learn = _module_learn(arrays, meta)
        # an artifact without a schema reads no attribute, whatever attr: features it holds
        features = FeatureSchema.from_json(meta.get("feature_schema", {"attributes": []}), "feature_schema")
    except InvalidInput as exc:
        raise ModelArtifactError(f"{directory}: {exc}") from exc
    except ModelArtifactError as exc:
        raise ModelArtifactError(f"{directory}: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelArtifactError(f"{directory}: incompatible artifact ({exc})") from exc
    return HybridModel(
        version=str(meta.get("version") or directory.name),
        user_space=FeatureSpace(user_names),
        item_space=FeatureSpace(item_names),
        success=factors["success"],
        ranking=factors["ranking"],
        bkt=BKTModel(params=params, module_learn=module_learn),
        use_features=bool(meta.get("use_features", True)),
        features=features,
        meta={k: v for k, v in meta.items() if k not in _UNPACKED},
    )


# fields, not meta
_UNPACKED = ("user_features", "item_features", "bkt_skills", "feature_schema", "module_learn_pairs")


def _module_learn(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> dict[tuple[str, str], float]:
    """Each module's own learning rate per skill; none in artifacts written before they were fitted."""
    pairs = meta.get("module_learn_pairs", [])
    rates = arrays.get("module_learn", np.zeros(0))
    if rates.ndim != 1 or len(rates) != len(pairs) or not np.isfinite(rates).all() or ((rates < 0) | (rates > 1)).any():
        raise ModelArtifactError(
            f"module_learn has shape {rates.shape} for {len(pairs)} pairs, or rates outside [0, 1]"
        )
    return {(str(m), str(s)): float(r) for (m, s), r in zip(pairs, rates, strict=True)}


def _skill_params(row: np.ndarray) -> SkillParams:
    values = {f: float(v) for f, v in zip(_BKT_FIELDS, row, strict=False)}
    values.setdefault("item_learn", values["learn"])  # how an older artifact's model was trained
    if "item_guess" in values:
        values.setdefault("studied_item_guess", values["item_guess"])
        values.setdefault("studied_item_slip", values["item_slip"])
    return SkillParams(**values)


def _factors(arrays: Mapping[str, np.ndarray], name: str, n_user: int, n_item: int) -> FactorModel:
    got = {f: arrays[f"{name}_{f}"] for f in _FACTORS}
    k = got["user_embeddings"].shape[1] if got["user_embeddings"].ndim == 2 else -1
    expected = {
        "user_embeddings": (n_user, k),
        "user_biases": (n_user,),
        "item_embeddings": (n_item, k),
        "item_biases": (n_item,),
    }
    for field, shape in expected.items():
        array = got[field]
        if array.shape != shape or array.dtype.kind != "f":
            raise ModelArtifactError(f"{name}_{field} has shape {array.shape} {array.dtype}, expected {shape} float")
        if not np.isfinite(array).all():
            raise ModelArtifactError(f"{name}_{field} holds NaN or infinite values")
    return FactorModel(**{f: np.asarray(v, dtype=np.float32) for f, v in got.items()})


def finite_metrics(metrics: Mapping[str, float]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float) and math.isfinite(v)}
