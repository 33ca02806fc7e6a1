"""Lightning training of the two stages (IFrameModule, PFrameModule), callbacks, schedules, export.

Imports models, losses, rate control, data and codec.modelfile; never Hydra (train.py instantiates the config).
"""
