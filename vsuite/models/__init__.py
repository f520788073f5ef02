"""Model families, each registered with transformers' Auto classes when this package is imported.

Importing this package imports torch and transformers. `import vsuite` stays light and registers
the families lazily, the first time transformers' Auto model classes are imported (see
`vsuite.hub.register_auto_classes_lazily`).
"""

from . import avlformer  # noqa: F401  (registers model_type "avlformer")
from . import avs  # noqa: F401  (registers model_type "vsuite_avs")
from . import lvt  # noqa: F401  (registers model_type "lvt")
from . import tnn  # noqa: F401  (registers model_type "tnn")
from . import transnormer  # noqa: F401  (registers model_type "transnormer")

__all__ = ["lvt", "tnn", "transnormer"]
