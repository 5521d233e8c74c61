"""nas: latency-aware neural architecture search for CNN backbones.

The public API for using genotypes needs only torch and pyyaml::

    import nas
    g = nas.load_genotype("zoo:mobilenet_v3_large")
    model = nas.build_model(g, num_classes=10)

``nas.train(genotype, data="fashion-mnist", epochs=20)`` trains one for real (:mod:`nas.training.run`), and
``nas.audit(config, settings)`` measures how well proxy settings rank networks (:mod:`nas.auditing.run`); their
imports load on first use.
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


def __getattr__(name: str):
    if name == "train":  # loaded on first use: `import nas` stays light
        from nas.training.run import train

        return train
    if name == "audit":
        from nas.auditing.run import audit

        return audit
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


__all__ = ["Genotype", "GenotypeError", "NasError", "__version__", "audit", "build_model", "genotype_text",
           "load_genotype", "save_genotype", "train", "zoo_names"]
