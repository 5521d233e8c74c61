"""predictors.latency."""
