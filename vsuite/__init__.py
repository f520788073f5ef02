"""vsuite: efficient sequence models and audio-visual video understanding, one CLI.

Importing vsuite stays light (no torch): the CLI's --help and shell completion run it on
every Tab press. Heavy modules are imported inside the commands that need them. vsuite's
model families are registered with transformers' Auto classes as soon as those are imported
(a one-shot import hook), so `AutoModelForCausalLM.from_pretrained(folder)` works after
`import vsuite` without trust_remote_code.
"""

from vsuite.hub import register_auto_classes_lazily as _register_auto_classes_lazily

__version__ = "0.1.0"

_register_auto_classes_lazily()
