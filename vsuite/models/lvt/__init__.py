"""Linear Video Transformer with Feature Fixation, registered with transformers' Auto classes (model_type "lvt")."""

from transformers import AutoConfig, AutoModel, AutoModelForVideoClassification

from .configuration_lvt import LvtConfig
from .modeling_lvt import LvtForVideoClassification, LvtModel

AutoConfig.register("lvt", LvtConfig, exist_ok=True)
AutoModel.register(LvtConfig, LvtModel, exist_ok=True)
AutoModelForVideoClassification.register(LvtConfig, LvtForVideoClassification, exist_ok=True)

__all__ = ["LvtConfig", "LvtForVideoClassification", "LvtModel"]
