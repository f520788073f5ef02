"""TNN language model, registered with transformers' Auto classes (model_type "tnn")."""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_tnn import TnnConfig
from .modeling_tnn import TnnForCausalLM, TnnModel

AutoConfig.register("tnn", TnnConfig, exist_ok=True)
AutoModel.register(TnnConfig, TnnModel, exist_ok=True)
AutoModelForCausalLM.register(TnnConfig, TnnForCausalLM, exist_ok=True)

__all__ = ["TnnConfig", "TnnForCausalLM", "TnnModel"]
