"""vsuite: efficient sequence models and audio-visual video understanding, one CLI.

Importing vsuite stays light (no torch): the CLI's --help and shell completion run it on
every Tab press. Heavy modules are imported inside the commands that need them.
"""

__version__ = "0.1.0"
