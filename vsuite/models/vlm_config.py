"""The [model] table of a caption finetune recipe: which video-language model to train, and how
(LoRA adapters merged on save, or full finetuning with the vision encoder frozen). The model itself
is vsuite.models.vlm."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class CaptionModelConfig(BaseModel):
    """The [model] table of a caption finetune recipe."""

    model_config = ConfigDict(extra="forbid", strict=True)

    init: str = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"
    lora: bool = True
    lora_r: int = Field(16, ge=1)
    lora_alpha: int = Field(32, ge=1)
    lora_dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"],
                                      description="LoRA targets (module name suffixes) in the language model")
    modules_to_save: list[str] = Field(default_factory=list, description="with LoRA: modules trained in full "
                                       "(e.g. lm_head), merged back on save")
    freeze_vision: bool = True  # full finetuning: keep the vision encoder fixed
