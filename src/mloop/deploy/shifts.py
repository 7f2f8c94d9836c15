"""Pure spec changes behind `shift` and `promote`: a new DeploymentSpec, nothing written."""

from __future__ import annotations

from mloop.deploy.spec import DeploymentSpec, Policy, Variant
from mloop.errors import ConflictError, ValidationError


def shifted(spec: DeploymentSpec, to_variant: str, percent: float) -> DeploymentSpec:
    """`spec` with `to_variant` getting `percent` of the traffic.

    A/B: the other variants share the rest in their current proportions. Canary: the
    candidate's percent (the primary gets the rest; a manual shift pauses nothing, the
    controller steps on from here). Shadow: the mirrored share. Blue-green: 100 switches the
    active slot to `to_variant`, 0 switches it away. Single: only 100 to its one variant.
    """
    if not 0 <= percent <= 100:
        raise ValidationError(f"percent must be between 0 and 100, got {percent:g}")
    spec.variant(to_variant)  # NotFoundError naming the variants
    data = spec.model_copy(deep=True)
    if spec.policy is Policy.AB:
        data.variants = _reweighted(spec.variants, to_variant, percent)
    elif spec.policy is Policy.CANARY and data.canary:
        share = percent if to_variant == data.canary.candidate else 100 - percent
        data.canary.percent = share
        data.canary.status = "running"
        data.canary.reason = f"shifted by hand to {share:g}%"
    elif spec.policy is Policy.SHADOW and data.shadow:
        if to_variant != data.shadow.candidate:
            raise ConflictError(
                f"in a shadow deployment only the candidate '{data.shadow.candidate}' has a "
                "share (the mirrored percent); the primary always answers"
            )
        data.shadow.share = percent
    elif spec.policy is Policy.BLUE_GREEN and data.blue_green:
        if percent not in (0, 100):
            raise ValidationError(
                "blue-green switches all traffic at once: use --percent 100 (or 0)",
                hint="for a gradual move use policy 'canary'",
            )
        other = "green" if to_variant == "blue" else "blue"
        data.blue_green.active = to_variant if percent == 100 else other  # type: ignore[assignment]
    elif percent != 100:
        raise ConflictError(
            f"deployment '{spec.name}' has one variant: it always gets 100%",
            hint="apply an 'ab' or 'canary' spec to split traffic",
        )
    return DeploymentSpec.model_validate(data.model_dump())


def promoted(spec: DeploymentSpec, variant: str | None = None) -> tuple[DeploymentSpec, str]:
    """`spec` after its candidate (or `variant`) becomes the primary, and the winner's name.

    Canary, shadow and A/B become `single` on the winner; blue-green switches to the idle slot
    (keeping both, so a switch back is instant).
    """
    if spec.policy is Policy.BLUE_GREEN and spec.blue_green:
        winner = variant or spec.candidate or "green"
        spec.variant(winner)
        if winner == spec.blue_green.active:
            raise ConflictError(f"slot '{winner}' is already active")
        data = spec.model_copy(deep=True)
        data.blue_green.active = winner  # type: ignore[union-attr,assignment]
        return DeploymentSpec.model_validate(data.model_dump()), winner
    if spec.policy is Policy.SINGLE:
        raise ConflictError(f"deployment '{spec.name}' has one variant: nothing to promote")
    if variant is None:
        if spec.candidate is not None:
            variant = spec.candidate
        elif spec.policy is Policy.AB and len(spec.variants) == 2:
            variant = spec.variants[1].name  # the treatment; the first is the control
        else:
            raise ValidationError(
                f"deployment '{spec.name}' ({spec.policy}) has no single candidate: name the "
                "variant to promote",
                hint=f"mloop deploy promote {spec.name} --variant NAME",
            )
    chosen = spec.variant(variant)
    data = spec.model_dump()
    data.update(
        policy=Policy.SINGLE.value,
        variants=[{"name": chosen.name, "model": chosen.model, "weight": None}],
        ab=None,
        canary=None,
        shadow=None,
        blue_green=None,
    )
    return DeploymentSpec.model_validate(data), chosen.name


def _reweighted(variants: list[Variant], to_variant: str, percent: float) -> list[Variant]:
    others = [v for v in variants if v.name != to_variant]
    rest = 100.0 - percent
    total = sum(v.weight or 0.0 for v in others)
    if not others:
        if percent != 100:
            raise ValidationError("an A/B deployment with one variant gives it 100%")
        return list(variants)
    out, given = [], 0.0
    for variant in variants:
        if variant.name == to_variant:
            weight = percent
        elif variant is others[-1]:
            weight = round(rest - given, 6)  # the last takes the rounding remainder
        else:
            share = (variant.weight or 0.0) / total if total else 1 / len(others)
            weight = round(rest * share, 6)
            given += weight
        out.append(variant.model_copy(update={"weight": weight}))
    return out
