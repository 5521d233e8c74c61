"""nas: latency-aware neural architecture search for CNN backbones.

The public API for using genotypes needs only torch and pyyaml::

    import nas
    g = nas.load_genotype("zoo:mobilenet_v3_large")
    model = nas.build_model(g, num_classes=10)
"""

from __future__ import annotations

from searchspace import (
    Genotype,
    GenotypeError,
    NasError,
    build_model,
    genotype_text,
    load_genotype,
    save_genotype,
    zoo_names,
)

__version__ = "0.1.0"

__all__ = ["Genotype", "GenotypeError", "NasError", "__version__", "build_model", "genotype_text",
           "load_genotype", "save_genotype", "zoo_names"]
