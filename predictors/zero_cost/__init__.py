"""predictors.zero_cost."""
