"""nas.export."""
