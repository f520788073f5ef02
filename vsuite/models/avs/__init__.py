"""Audio-visual segmentation with bidirectional generation, registered with transformers' Auto classes
(model_type "vsuite_avs")."""

from transformers import AutoConfig, AutoModel

from .configuration_avs import AVSConfig
from .modeling_avs import AVSModel, AVSOutput
from .official import load_official_avs_checkpoint
from .vggish import VGGish, convert_vggish_state_dict

AutoConfig.register("vsuite_avs", AVSConfig, exist_ok=True)
AutoModel.register(AVSConfig, AVSModel, exist_ok=True)

__all__ = ["AVSConfig", "AVSModel", "AVSOutput", "VGGish", "convert_vggish_state_dict",
           "load_official_avs_checkpoint"]
