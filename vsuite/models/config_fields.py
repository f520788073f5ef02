"""Checks of a recipe's `[model]` table against the config class of its model_type.

Shared by every task that builds a model from `model_type` + `[model.config]` (pretrain,
finetune): the fields must exist on that config class (or its attribute_map) and pass the
class's own checks. Importing this module is light; the lookup imports vsuite.models.
"""

from __future__ import annotations

from typing import Any


def config_class(model_type: str):
    """The config class transformers knows for a model_type (vsuite's included), or None."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    import vsuite.models  # noqa: F401  (registers vsuite's model types)

    try:
        return CONFIG_MAPPING[model_type]
    except KeyError:
        return None


def check_config_fields(cls, model_type: str, fields: dict[str, Any]) -> None:
    """Raise ValueError for fields `cls` does not have, or values its own checks reject."""
    known = set(cls().to_dict()) | set(getattr(cls, "attribute_map", {}))
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(unknown)} for model_type {model_type!r}")
    try:  # the config class's own checks (shapes, names)
        cls(**fields)
    except (ValueError, TypeError) as err:
        raise ValueError(str(err)) from None
