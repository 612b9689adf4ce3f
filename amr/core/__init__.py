"""The core vocabulary: readings and channels, meters and ratios, exact energy, durations and times."""
