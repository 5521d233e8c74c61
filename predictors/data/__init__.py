"""predictors.data."""
