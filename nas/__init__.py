"""nas: latency-aware neural architecture search for CNN backbones.

The public API for using genotypes needs only torch and pyyaml::

    import nas
    g = nas.load_genotype("zoo:mobilenet_v3_large")
    model = nas.build_model(g, num_classes=10)

``nas.run(target_latency="20ms", budget="10m", train={"epochs": 20})`` searches, trains the winner, exports
and verifies it and writes its model card (:mod:`nas.pipeline.run`); ``nas.train(genotype, data="fashion-mnist",
epochs=20)`` trains one for real (:mod:`nas.training.run`); ``nas.load(run_dir)`` gives the trained network back
with its preprocessing (:mod:`nas.training.load`); ``nas.audit(config, settings)`` measures how well proxy
settings rank networks (:mod:`nas.auditing.run`). Their imports load on first use.
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
    if name == "run":
        from nas.pipeline.run import run

        return run
    if name in ("load", "load_preprocess"):
        from nas.training import load

        return getattr(load, name)
    if name == "Preprocess":
        from nas.training.preprocess import Preprocess

        return Preprocess
    raise AttributeError(f"module 'nas' has no attribute {name!r}")


__all__ = ["Genotype", "GenotypeError", "NasError", "Preprocess", "__version__", "audit", "build_model",
           "genotype_text", "load", "load_genotype", "load_preprocess", "run", "save_genotype", "train", "zoo_names"]
