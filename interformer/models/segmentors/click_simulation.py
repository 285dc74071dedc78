"""Moved to :mod:`interformer.interaction.click_simulation` (next to the
click step it shares with the click test and the predictor); this name is
kept so that existing imports keep working."""
from interformer.interaction.click_simulation import *  # noqa: F401,F403
from interformer.interaction.click_simulation import __all__  # noqa: F401
