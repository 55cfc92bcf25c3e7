"""The PyTorch reference that ``validate`` compares an artifact with: its model rebuilt with the weights the
artifact's card names (or the ones given), refused in one line when those weights cannot be found."""

from __future__ import annotations

from pathlib import Path

from ..core.card import ModelCard
from ..core.errors import ArtifactError, CheckpointError, UnknownModelError
from ..core.paths import is_checkpoint_path



def rebuild_reference(spec, card: ModelCard, weights: str | None, path: Path):
    """Build the PyTorch model with the reference weights; returns (model, weights record, notes)."""
    from ..models.registry import create_model_with_report

    recorded = card.weights if isinstance(card.weights, dict) else {}
    source, card_sha = recorded.get("source"), recorded.get("sha256")
    origin, weights_arg, arch, notes = _which_weights(spec, card, weights, path)
    if card.num_classes is None:
        raise ArtifactError(f"{path.name}'s card has no num_classes; export it again")
    model, report = create_model_with_report(spec.name, num_classes=card.num_classes, weights=weights_arg, **arch)
    digest = report.sha256 if report is not None else None
    matches = None if not card_sha or digest is None else digest == card_sha
    if matches is False:
        notes.append(f"the checkpoint (SHA-256 {digest[:12]}…) is not the one {path.name} was exported from "
                     f"({card_sha[:12]}…): differences are expected")
    record = {"origin": origin, "source": source if origin != "argument" else weights_arg,
              "path": report.path if report else None, "sha256": digest, "matches_card": matches}
    return model, record, notes


def _which_weights(spec, card: ModelCard, weights: str | None, path: Path) -> tuple[str, str, dict, list]:
    """Where the reference weights come from: the argument, the checkpoint path on the card (unchanged since),
    or the published checkpoint in torch.hub's cache; returns (origin, weights argument, arch options, notes)."""
    from ..core.files import sha256_file
    from ..models.weights import hub_cache_path

    recorded = card.weights if isinstance(card.weights, dict) else {}
    source, card_path, card_sha = recorded.get("source"), recorded.get("path"), recorded.get("sha256")
    published = _published(spec, source)
    arch = dict(card.extra.get("arch_options") or {}) if isinstance(card.extra, dict) else {}
    notes: list[str] = []

    if weights is not None:
        origin, weights_arg = "argument", str(weights)
        if source == "random":
            notes.append(f"{path.name}'s card says it was exported with random weights: it can pass only if the "
                         "given checkpoint holds the very same weights")
        if published is not None and _looks_like_path(weights_arg):
            arch = {**published.arch_options, **arch}  # GoogLeNet's transform_input travels with the checkpoint
    elif card_path and Path(card_path).is_file():
        digest = sha256_file(card_path)
        if card_sha and digest != card_sha:
            raise CheckpointError(
                f"{path.name} was exported from '{card_path}', but that file has changed since (SHA-256 "
                f"{digest[:12]}…, recorded {card_sha[:12]}…); pass the original checkpoint with --weights")
        origin, weights_arg = "card path", card_path
        if published is not None:
            arch = {**published.arch_options, **arch}
    elif published is not None:
        cached = hub_cache_path(published)
        if not cached.is_file():
            raise CheckpointError(
                f"{path.name} was exported from {spec.name}'s published '{published.name}' checkpoint, which is "
                f"not in torch.hub's cache ({cached}); put {published.url} there, or pass --weights "
                f"{published.name} to download it, or --weights FILE")
        origin, weights_arg = "published cache", published.name
    elif source == "random":
        raise CheckpointError(
            f"{path.name} was exported with random weights, which are recorded nowhere (nor are the BatchNorm "
            "statistics re-estimated at export), so its PyTorch source cannot be rebuilt to compare with; export "
            f"from a checkpoint (edgecnn export {spec.name} --weights CKPT) and validate that artifact, or pass "
            "--weights CKPT if you know which weights the file holds")
    elif source == "file" and card_path:
        raise CheckpointError(
            f"{path.name} was exported from the checkpoint '{card_path}'"
            + (f" (SHA-256 {card_sha[:12]}…)" if card_sha else "") + ", which is not there any more; pass it with "
            "--weights CKPT")
    else:
        raise CheckpointError(f"{path.name} does not say which weights it holds; pass the checkpoint with --weights CKPT")
    return origin, weights_arg, arch, notes


def _published(spec, source):
    if not source or source in ("random", "file"):
        return None
    try:
        return spec.checkpoint(source)
    except UnknownModelError:
        return None


def _looks_like_path(weights: str) -> bool:
    return is_checkpoint_path(weights)  # the one rule (edgecnn.core.paths)
