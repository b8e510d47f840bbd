"""rtrl: online learning with recurrent networks, with exact real-time recurrent learning made
affordable by network structure."""

__version__ = "0.1.0"
