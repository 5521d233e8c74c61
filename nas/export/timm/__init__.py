"""nas.export.timm."""
