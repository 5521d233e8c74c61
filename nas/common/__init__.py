"""Small helpers the engine's packages share: text formats and figures."""
