"""nas.scaling."""
