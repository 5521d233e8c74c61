"""nas.strategies.surrogate."""
