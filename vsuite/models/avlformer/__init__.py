"""AVLFormer (FAVD audible video description), registered with transformers' Auto classes (model_type
"avlformer"): AutoConfig -> AvlformerConfig, AutoModel -> AvlformerForDescription (the only head)."""

from transformers import AutoConfig, AutoModel

from .configuration_avlformer import AvlformerConfig
from .modeling_avlformer import AvlformerForDescription, AvlformerPreTrainedModel

AutoConfig.register("avlformer", AvlformerConfig, exist_ok=True)
AutoModel.register(AvlformerConfig, AvlformerForDescription, exist_ok=True)

__all__ = ["AvlformerConfig", "AvlformerForDescription", "AvlformerPreTrainedModel"]
