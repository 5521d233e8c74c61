"""Latency lookup table: every distinct part (stem, block instance, head), timed inside the network it runs in.

The table is persisted per device fingerprint and batch (``lut-v<scheme>-innet-<fingerprint>-b<batch>.jsonl``
under the cache dir) and needs no set-up: when a network is first predicted, the parts the table lacks are
timed inside that network (forward hooks, :mod:`predictors.latency.in_network`), as they run there, with
the weights and activations the other parts leave in the caches; a part timed alone runs with hot caches
and under-predicts memory-bound families by 10-100% (``experiments/README.md``). On the first prediction
without a correction a few reference networks are measured whole to fit one
(:mod:`predictors.latency.calibration`). Parts are timed in the memory format whole networks are measured
in (:func:`predictors.latency.conditions.memory_format_of`), and parts that build the same module on the same
input shape share one entry (:func:`predictors.latency.parts.part_signature`). Every network measured whole
under the table's conditions can be added with :meth:`LatencyTable.observe`, which refits the correction
(``lut-...-<format>.correction.json``, data in ``...-<format>.networks.jsonl``). Backends without forward
hooks (torchscript, onnxruntime) time the parts alone.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, replace
from pathlib import Path

from predictors.latency.cache import TIMING_SCHEME, cache_dir
from predictors.latency.calibration import (
    FULL_FEATURES,
    PART_GROUPS,
    Correction,
    Observations,
    Prediction,
    reference_networks,
)
from predictors.latency.conditions import MeasureConfig, conditions_of, memory_format_of
from predictors.latency.fingerprint import fingerprint
from predictors.latency.in_network import NetworkTiming, time_genotype_parts
from predictors.latency.load import Load, LoadMonitor, default_monitor
from predictors.latency.measure import measure_modules
from predictors.latency.node_lock import exclusive_lock
from predictors.latency.parts import (
    CostTable,
    Part,
    cost_features,
    cost_table,
    network_parts,
    part_signature,
)
from predictors.latency.timing import Timing
from searchspace.genotype import Genotype
from searchspace.jsonl import JsonlStore
from searchspace.resolve import parse_genotype, with_scaling
from searchspace.size import check_size

# a network whose parts are timed runs at least 10 forwards, and stops once the parts it is timed for sum to a
# per-forward time whose IQR is within 2% of its median, or after 0.3 s (3 x 0.1 s), or 40 forwards; timed
# alone (backends without hooks), a part stops after one round of at least 10 repetitions once its IQR is
# within 2% of its median
PART_PROFILE = MeasureConfig(warmup=3, reps=40, min_reps=10, rounds=3, min_rounds=1, round_seconds=0.1,
                             target_spread=0.02)
CALIBRATION_PASSES = 2  # the first-use calibration times each reference network this many times, a pass apart
CONTEXT = "innet"  # in the table's file name: parts timed inside their networks (tables of parts timed alone differ)
# (network, resolution, indices of the parts to time in network_parts order) -> those parts' timings, timed
# inside the network, and the whole network's, in the table's conditions
PartTimer = Callable[[Genotype, int | None, Sequence[int]], NetworkTiming]
References = Callable[[int], list[Genotype]]  # resolution -> networks to calibrate on


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class LatencyTable:
    """Per-part latencies for one fingerprint, batch and memory format, plus the correction to whole networks.

    Collaborators can be handed in (tests give fakes): ``timer`` times a network's parts inside it and the
    whole network, ``references`` names the first-use calibration networks, ``notify`` gets progress lines,
    ``monitor`` tells whether other work ran beside a measurement (:mod:`predictors.latency.load`).
    """

    def __init__(self, config: MeasureConfig | None = None, path: str | Path | None = None,
                 costs: CostTable | None = None, *, timer: PartTimer | None = None,
                 references: References | None = None, notify: Callable[[str], None] | None = None,
                 monitor: LoadMonitor | None = None) -> None:
        self.config = config or PART_PROFILE
        self.memory_format = memory_format_of(self.config)
        self.fingerprint = fingerprint(self.config.backend, self.config.device, self.config.threads)
        default = cache_dir() / f"lut-v{TIMING_SCHEME}-{CONTEXT}-{self.fingerprint.id()}-b{self.config.batch}.jsonl"
        self.path = Path(path) if path is not None else default
        self.store = JsonlStore(self.path)
        self.costs = costs or cost_table()
        self.observations = Observations(self._beside("networks.jsonl"))
        self.timer = timer or self._time_parts
        self.references = references or reference_networks
        self.notify = notify or _stderr
        self.monitor = monitor or default_monitor(self.fingerprint.threads)
        self.correction = self._load_correction()
        self._sums: dict[tuple, dict[str, float]] = {}
        self._signatures: dict[str, str] | None = None
        self._recalibration_tried = False
        self._warned_busy = False
        self._quiet: bool | None = None  # whether the machine was quiet when first asked (see _quiet_now)

    @classmethod
    def for_this_device(cls, backend: str = "torch", threads: int | None = None, device: str = "cpu",
                        batch: int = 1, path: str | Path | None = None, memory_format: str | None = None,
                        **tools) -> LatencyTable:
        """This machine's table for the conditions; empty on a fresh machine, filled as it is used."""
        config = replace(PART_PROFILE, backend=backend, threads=threads, device=device, batch=batch,
                         memory_format=memory_format)
        return cls(config, path, **tools)

    def _beside(self, suffix: str) -> Path:
        return self.path.with_name(f"{self.path.stem}-{self.memory_format}.{suffix}")

    @property
    def correction_path(self) -> Path:
        return self._beside("correction.json")

    def conditions(self, resolution: int) -> dict:
        """The conditions the table's predictions are for (as ``Measurement.conditions``)."""
        fp = self.fingerprint
        return conditions_of(fp.backend, fp.device, fp.threads, self.memory_format, self.config.batch, resolution,
                             fp.id())

    def whole_config(self) -> MeasureConfig:
        """How networks are measured whole for this table (the defaults of ``nas latency``)."""
        return replace(MeasureConfig(), backend=self.config.backend, device=self.config.device,
                       threads=self.config.threads, batch=self.config.batch, memory_format=self.memory_format)

    def _load_correction(self) -> Correction:
        if not self.correction_path.exists():
            return Correction.identity()
        raw = json.loads(self.correction_path.read_text())
        return Correction(**{k: raw[k] for k in asdict(Correction.identity()) if k in raw})

    def _save_correction(self) -> None:
        self.correction_path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.correction_path.with_name(f"{self.correction_path.name}.{os.getpid()}")
        partial.write_text(json.dumps(asdict(self.correction), indent=1))
        partial.replace(self.correction_path)  # atomic: readers never see half a file

    def __len__(self) -> int:
        return len(self.store)

    # ---- parts -------------------------------------------------------------------------------------

    def _complete(self, entry: dict | None) -> bool:
        return entry is not None and f"{self.memory_format}_ms" in entry

    def missing(self, parts: Sequence[Part]) -> list[Part]:
        """Parts without an entry in the table's memory format (each distinct key once), and parts profiled
        while the machine was busy when it is quiet now."""
        seen: dict[str, Part] = {}
        for p in parts:
            entry = self.store.get(p.key)
            if p.key not in seen and (not self._complete(entry) or (entry.get("loaded") and self._quiet_now())):
                seen[p.key] = p
        return list(seen.values())

    def _quiet_now(self) -> bool:
        """Whether the machine was quiet at this table's first question (one probe per table object)."""
        if self._quiet is None:
            self._quiet = not self.monitor.probe().busy
        return self._quiet

    def _time_parts(self, genotype: Genotype, resolution: int | None, indices: Sequence[int]) -> NetworkTiming:
        config = replace(self.config, memory_format=self.memory_format)
        if config.backend == "torch":
            timed = time_genotype_parts(genotype, config, resolution, indices)
            return NetworkTiming([timed.parts[i] for i in indices], timed.whole)
        from searchspace import build_model  # no hooks in a traced or exported graph: the parts alone

        parts, res = network_parts(genotype, resolution), resolution or genotype.resolution
        modules = [(parts[i].build(), (config.batch, *parts[i].in_shape)) for i in indices]
        modules.append((build_model(genotype, resolution=res), (config.batch, genotype.input["channels"], res, res)))
        *alone, whole = measure_modules(modules, config)
        return NetworkTiming(alone, whole)

    def _signature_index(self) -> dict[str, str]:
        if self._signatures is None:
            self._signatures = {e["signature"]: e["key"] for e in self.store.values()
                                if "signature" in e and self._complete(e) and not e.get("loaded")}
        return self._signatures

    def _put(self, part: Part, signature: str, timing: dict, same_as: str | None = None) -> None:
        old = {k: v for k, v in (self.store.get(part.key) or {}).items() if k not in ("key", "loaded", "same_as")}
        extra = {"same_as": same_as} if same_as is not None else {}
        self.store.put(part.key, {**old, **timing, "signature": signature, **extra})
        self._signature_index().setdefault(signature, part.key)
        if same_as is None:
            self.costs.cost(part, self.config.batch)  # count its cost now: predictions need no counting
        else:
            self.costs.share(part, same_as, self.config.batch)

    def plan(self, parts: Sequence[Part]) -> tuple[list[tuple[Part, str, str]], dict[str, list[Part]]]:
        """The missing parts, sorted: those equal to a part in the table, as (part, signature, that part's
        key), and the rest grouped by :func:`part_signature` (each group is measured once)."""
        index = self._signature_index()
        known: list[tuple[Part, str, str]] = []
        by_signature: dict[str, list[Part]] = {}
        for part in self.missing(parts):
            signature = part_signature(part)
            if signature in index:
                known.append((part, signature, index[signature]))
            else:
                by_signature.setdefault(signature, []).append(part)
        return known, by_signature

    def profile(self, genotype: Genotype, resolution: int | None = None) -> dict[str, int]:
        """Time every part of ``genotype`` the table lacks inside the network (one hooked run of it).

        A part equal to one in the table (same :func:`part_signature`) shares its entry; equal parts in this
        network are timed together, and their entry is the mean of their medians (so the entries still sum
        to the network's parts). Returns counts: ``added`` (parts new to the table), ``measured`` (distinct
        modules timed) and ``shared`` (added = measured + shared).
        """
        return self._profile(genotype, resolution)[0]

    def time_network(self, genotype: Genotype, resolution: int | None = None) -> NetworkTiming:
        """Time every part of ``genotype`` inside it and the whole network (parts it lacks join the table)."""
        timing = self._profile(genotype, resolution, every_part=True)[1]
        assert timing is not None
        return timing

    def _profile(self, genotype: Genotype, resolution: int | None,
                 every_part: bool = False) -> tuple[dict[str, int], NetworkTiming | None]:
        parts = network_parts(genotype, resolution)
        known, by_signature = self.plan(parts)
        for part, signature, key in known:
            self._put(part, signature, _timing_fields(self.store.get(key), self.memory_format), key)
        added = len(known) + sum(len(same) for same in by_signature.values())
        counts = {"added": added, "measured": len(by_signature), "shared": added - len(by_signature)}
        if not by_signature and not every_part:
            return counts, None
        where = {sig: [i for i, p in enumerate(parts) if p.key in {q.key for q in same}]
                 for sig, same in by_signature.items()}
        indices = list(range(len(parts))) if every_part else sorted(i for places in where.values() for i in places)
        with self.monitor.watch() as window:
            timing = self.timer(genotype, resolution, indices)
        timings = dict(zip(indices, timing.parts, strict=True))
        loaded = {"loaded": round(window.load.other_cores, 2)} if window.load.busy else {}
        if loaded and not self._warned_busy:
            self._warned_busy = True  # once per table: every later part of a busy spell is marked as well
            self.notify(f"nas: warning: latency table: the machine is busy ({window.load.describe()}); the "
                        "parts timed now are marked and timed again when it is quiet")
        for signature, same in by_signature.items():
            fields = {**_mean_timing([timings[i] for i in where[signature]], self.memory_format), **loaded}
            self._put(same[0], signature, fields)
            for other in same[1:]:
                self._put(other, signature, fields, same[0].key)
        return counts, timing

    def profile_many(self, genotypes: Sequence[Genotype], resolution: int | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict[str, int]:
        """:meth:`profile` each network in turn (what ``nas latency build-lut`` runs); summed counts."""
        total = {"added": 0, "measured": 0, "shared": 0}
        for done, genotype in enumerate(genotypes, 1):
            for name, count in self.profile(genotype, resolution).items():
                total[name] += count
            if progress is not None:
                progress(done, len(genotypes))
        return total

    # ---- networks ----------------------------------------------------------------------------------

    def group_sums(self, genotype: Genotype, resolution: int | None = None) -> dict[str, float]:
        """Table sums per part group (stem, head, each family), their total and the part count.

        Parts the table lacks are timed first (inside the network).
        """
        key = (genotype.hash(), resolution)
        if key in self._sums:
            return self._sums[key]
        parts = network_parts(genotype, resolution)
        self.profile(genotype, resolution)
        self._sums[key] = _group_sums(parts, [self.store.get(p.key)[f"{self.memory_format}_ms"] for p in parts])
        return self._sums[key]

    def table_ms(self, genotype: Genotype, resolution: int | None = None) -> float:
        """Sum of the table entries of ``genotype``'s parts."""
        return self.group_sums(genotype, resolution)["table_ms"]

    def clear_cache(self) -> None:
        """Forget cached table sums (to time cold predictions)."""
        self._sums.clear()

    def correction_features(self, genotype: Genotype, resolution: int | None = None,
                            sums: dict[str, float] | None = None) -> dict[str, float]:
        """Every feature a correction may use (see :data:`FULL_FEATURES`); ``sums``: these group sums
        instead of the table's (a network's own parts, timed in one run with it)."""
        f = cost_features(genotype, self.config.batch, resolution, self.costs)
        return {**(sums or self.group_sums(genotype, resolution)), "one": 1.0,
                "params_m": math.expm1(f["log_params"]) / 1e6, "mem_mb": math.expm1(f["log_mem"]) / 1e6}

    def fit_correction(self, genotypes: Sequence[Genotype], measured_ms: Sequence[float],
                       resolution: int | None = None, save: bool = True) -> Correction:
        """Fit the correction on exactly these networks (measured whole on this device); save it if asked."""
        rows = [self.correction_features(g, resolution) for g in genotypes]
        self.correction = Correction.fit(rows, measured_ms, self.correction.retest)
        if save:
            self._save_correction()
        return self.correction

    def matches(self, conditions: dict) -> bool:
        """Whether a measurement's conditions are this table's (fingerprint, batch, memory format)."""
        mine = self.conditions(0)
        return all(conditions.get(k) == mine[k] for k in ("fingerprint_id", "batch", "memory_format"))

    def observe(self, genotype: Genotype, measured_ms: float, resolution: int | None = None,
                conditions: dict | None = None) -> bool:
        """Add one network measured whole to the correction's data and refit (see :meth:`observe_many`)."""
        return self.observe_many([genotype], [measured_ms], resolution, conditions)

    def observe_many(self, genotypes: Sequence[Genotype], measured_ms: Sequence[float], resolution: int | None = None,
                     conditions: dict | None = None) -> bool:
        """Add networks measured whole under this table's conditions, refit the correction on every network
        observed so far and save it (while the saved correction is provisional, the next quiet calibration
        refits on them). With ``conditions`` (a measurement's) that are not the table's: nothing is added and
        the result is False."""
        if conditions is not None and not self.matches(conditions):
            return False
        self._add_observations(genotypes, measured_ms, resolution)
        if not self._load_correction().provisional:  # a provisional one waits for a quiet calibration
            self.refit()
        return True

    def _add_observations(self, genotypes: Sequence[Genotype], measured_ms: Sequence[float],
                          resolution: int | None = None) -> None:
        for g, ms in zip(genotypes, measured_ms, strict=True):
            self.observations.add(g, resolution or g.resolution, ms, self.correction_features(g, resolution))

    def refit(self) -> Correction:
        """Fit the correction on every observed network and save it."""
        rows, measured = [], []
        for record in self.observations.records():
            row = record["features"]
            if not set(FULL_FEATURES) <= row.keys():  # written before a family was added: recount
                genotype = with_scaling(parse_genotype(record["genotype"]), resolution=record["resolution"])
                row = self.correction_features(genotype)
            rows.append(row)
            measured.append(record["measured_ms"])
        self.correction = Correction.fit(rows, measured, self.correction.retest)
        self._save_correction()
        return self.correction

    def calibrate(self, resolution: int) -> Correction:
        """Time the reference networks at ``resolution`` part by part and whole (:meth:`time_network`),
        :data:`CALIBRATION_PASSES` passes, and fit the correction; one process at a time on one table.

        Each network's parts and its whole forward are read in one run, so the correction learns how a
        whole network relates to its parts here, not how fast the machine ran in the minute it calibrated
        (a shared machine moves 20-70% between minutes; with parts and networks timed a minute apart one
        calibration shifted every later prediction by -13%). The passes' disagreement on the same networks
        is the machine's own retest noise, which widens every interval (:attr:`Correction.retest`). Other
        work on the machine before or during it (``self.monitor``) makes the correction provisional: saved
        marked so, its networks not kept, and replaced by the first calibration that finds the machine
        quiet. A process that waited for another's calibration uses it.
        """
        with self._calibration_lock():
            saved = self._load_correction()
            if saved.n and not saved.provisional:
                self.correction = saved  # another process calibrated meanwhile
                return saved
            before = self.monitor.probe()
            if saved.n and before.busy:  # still busy: measuring again would only fit the same load
                self.correction = saved
                return saved
            networks = self.references(resolution)
            self.notify(f"latency table: calibrating on {len(networks)} networks timed part by part and whole at "
                        f"resolution {resolution}, {CALIBRATION_PASSES} passes (first use on this device, "
                        f"fingerprint {self.fingerprint.id()})...")
            with self.monitor.watch() as window:
                passes = [[self._run_features(g) for g in networks] for _ in range(CALIBRATION_PASSES)]
            rows = [_mean_row([run[k][0] for run in passes]) for k in range(len(networks))]
            wholes = [sum(run[k][1] for run in passes) / len(passes) for k in range(len(networks))]
            retest = _retest_noise([[whole for _, whole in run] for run in passes])
            load = max(before, window.load, key=lambda w: w.other_cores)
            if before.busy or window.load.busy:
                return self._provisional(rows, wholes, retest, load)
            for g, row, ms in zip(networks, rows, wholes, strict=True):
                self.observations.add(g, g.resolution, ms, row)
            self.correction = replace(self.correction, retest=retest)
            return self.refit()

    def _run_features(self, genotype: Genotype) -> tuple[dict[str, float], float]:
        """One run of ``genotype`` timed part by part and whole: correction features from its own parts'
        times (not the table's, which other runs may have timed) and its whole time (ms)."""
        timing = self.time_network(genotype)
        sums = _group_sums(network_parts(genotype), [t.median_ms for t in timing.parts])
        return self.correction_features(genotype, sums=sums), timing.whole.median_ms

    def _provisional(self, rows: list[dict[str, float]], measured_ms: list[float], retest: float,
                     load: Load) -> Correction:
        """Fit and save a correction marked provisional (its networks are not observations)."""
        fitted = Correction.fit(rows, measured_ms, retest)
        self.correction = replace(fitted, provisional=True, other_cores=round(load.other_cores, 2))
        self._save_correction()
        self.notify(f"nas: warning: latency table: the machine was busy while it calibrated ({load.describe()}); "
                    "the correction is provisional and is measured again when the machine is quiet "
                    "(stop other work for the most accurate predictions)")
        return self.correction

    def _calibration_lock(self):
        """An exclusive lock on this table's correction: two processes on one empty cache calibrate once."""
        path = self.correction_path.with_name(f"{self.correction_path.name}.lock")
        waiting = "latency table: another process is calibrating this table; waiting for it..."
        return exclusive_lock(path, on_wait=lambda: self.notify(waiting))

    def predict_interval(self, genotype: Genotype, resolution: int | None = None) -> Prediction:
        """Corrected table sum, with the correction's out-of-fold residual quantiles as the interval.

        The first prediction on a device without a correction calibrates one (:meth:`calibrate`). A
        network too large to build is refused before any part of it is profiled.
        """
        check_size(with_scaling(genotype, resolution=resolution) if resolution else genotype)
        if self.correction.n == 0:
            self.correction = self._load_correction()  # another process may have calibrated meanwhile
        if self.correction.n == 0 or (self.correction.provisional and not self._recalibration_tried):
            self._recalibration_tried = True  # a provisional correction is measured again once per process
            self.calibrate(resolution or genotype.resolution)
        return self.correction.interval(self.correction_features(genotype, resolution))

    def predict(self, genotype: Genotype, resolution: int | None = None) -> float:
        """Predicted latency (ms) of ``genotype``."""
        return self.predict_interval(genotype, resolution).ms


def _group_sums(parts: Sequence[Part], part_ms: Sequence[float]) -> dict[str, float]:
    """Sums per part group (stem, head, each family) of the parts' times, their total and the part count."""
    sums = dict.fromkeys((f"{g}_ms" for g in PART_GROUPS), 0.0)
    for part, ms in zip(parts, part_ms, strict=True):
        sums[f"{part.group}_ms"] += ms
    sums["table_ms"] = sum(sums[f"{g}_ms"] for g in PART_GROUPS)
    sums["parts"] = float(len(parts))
    return sums


def _mean_row(rows: Sequence[dict[str, float]]) -> dict[str, float]:
    return {k: sum(r[k] for r in rows) / len(rows) for k in rows[0]}


def _retest_noise(passes: Sequence[Sequence[float]]) -> float:
    """The RMS log difference between two passes' times of the same networks (0 with one pass): how far a
    second reading of a network strays from the first on this machine."""
    if len(passes) < 2:
        return 0.0
    diffs = [math.log(b / a) for a, b in zip(passes[0], passes[1], strict=True) if a > 0 and b > 0]
    return math.sqrt(sum(d * d for d in diffs) / len(diffs)) if diffs else 0.0


def _mean_timing(timings: Sequence[Timing], memory_format: str) -> dict:
    """The table fields of a part timed at several places of one network: mean median and IQR, all repetitions."""
    n = len(timings)
    return {f"{memory_format}_ms": sum(t.median_ms for t in timings) / n, "iqr_ms": sum(t.iqr_ms for t in timings) / n,
            "reps": sum(t.reps for t in timings)}


def _timing_fields(entry: dict, memory_format: str) -> dict:
    return {f"{memory_format}_ms": entry[f"{memory_format}_ms"], "iqr_ms": entry.get("iqr_ms"),
            "reps": entry.get("reps")}
