"""TransNormerLLM (TNL), registered with transformers' Auto classes at import.

After `import vsuite.models` (or `import vsuite`, see vsuite/__init__.py), a folder whose config.json
says `"model_type": "transnormer"` loads with AutoConfig / AutoModel / AutoModelForCausalLM, official
checkpoints included, without trust_remote_code.
"""

from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from .configuration_transnormer import TransnormerConfig
from .modeling_transnormer import TransnormerCache, TransnormerForCausalLM, TransnormerModel

AutoConfig.register(TransnormerConfig.model_type, TransnormerConfig, exist_ok=True)
AutoModel.register(TransnormerConfig, TransnormerModel, exist_ok=True)
AutoModelForCausalLM.register(TransnormerConfig, TransnormerForCausalLM, exist_ok=True)

__all__ = ["TransnormerCache", "TransnormerConfig", "TransnormerForCausalLM", "TransnormerModel"]
