"""predictors.training."""
