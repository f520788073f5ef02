"""The [model] table of a language-model recipe (`vsuite pretrain`): which causal LM to build or continue.

Either `model_type` + [model.config] (fields of that model's config class, checked against the class
here so a typo fails at recipe time) or `init` = a folder / Hub id to continue from. vocab_size and the
bos/eos/pad ids default to the tokenizer's when the model is built.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from .config_fields import check_config_fields, config_class


class LMModelConfig(BaseModel):
    """The [model] table of a pretrain recipe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model_type: str = "transnormer"  # a model_type registered with transformers (vsuite.models adds its own)
    init: str = ""  # start from these weights (folder, Hub id, or an official TNN fairseq .pt file) instead of a random init
    config: dict[str, Any] = Field(default_factory=dict, description="fields of the model's config class")

    @model_validator(mode="after")
    def _known_fields(self) -> LMModelConfig:
        if self.init and self.config:
            raise ValueError("give either init (continue from weights) or [model.config] (a new model), not both")
        cls = config_class(self.model_type)
        if cls is None:  # not registered (yet): checked when the model is built
            return self
        check_config_fields(cls, self.model_type, self.config)  # vocab and special ids come later
        return self
