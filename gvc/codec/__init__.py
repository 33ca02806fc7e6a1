"""Real bitstreams: the .gvc container, .gvcm model files, encode/decode of videos, the `gvc` codec commands.

Imports models and data only (never Lightning, Hydra or training code); submodules load lazily.
"""
