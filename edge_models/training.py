"""Learning personas from device feature vectors: cluster, keep ids stable, name, distil.

The maths lives here as functions of arrays; the backend's retraining and the default-bundle
build call the same functions. Steps:

1. standardise the vectors and cluster them (k-means, ``k`` given);
2. match the new clusters to the previous model's personas (Hungarian assignment on centroid
   distance), so a persona keeps its id and name across retrains; unmatched clusters get
   fresh ids and names built from their distinguishing traits;
3. distil the clustering into a small MLP that the device runs (ONNX), and check it against
   the clustering on held-out devices (the quality gate) and its size.

Large inputs (the switch is by size, so small ones, such as the default bundle's 300 devices,
take exactly the path they always took and give the same bytes): k-means is fitted on a
uniform sample of at most ``MAX_CLUSTER_ROWS`` vectors and then labels every vector, and the
MLP is distilled from a sample of ``MAX_DISTIL_ROWS`` vectors stratified by cluster: fitted on
three quarters of it, checked on the rest, and that checked model is the one shipped (small
inputs refit on every vector, since there each device counts). With a few personas, a
hundred thousand vectors fix the centroids far more precisely than the clusters are wide, and
fifteen thousand teach the MLP the boundaries (an MLP fit costs time in proportion to its
rows: on a million, it would take many minutes). Training time and memory are then bounded
whatever the fleet size; ``Trained.assign`` labels further vectors (say, streamed from a
database) with the same clustering.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment
from skl2onnx import to_onnx
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from edgepersona.sdk.features import FEATURE_NAMES, FEATURES, SCHEMA_VERSION

MIN_AGREEMENT = 0.90  # distilled model vs clustering on held-out devices
MAX_MODEL_BYTES = 64 * 1024
MAX_CLUSTER_ROWS = 100_000  # k-means is fitted on a uniform sample of this many vectors
MAX_DISTIL_ROWS = 20_000  # a stratified sample: the MLP learns from 3/4, is checked on 1/4

# Phrases for naming a persona after the features where its centroid stands out (z-score).
_TRAIT_WORDS: dict[str, tuple[str, str]] = {  # feature: (when high, when low)
    "tod_night": ("Night-time", "Early-to-bed"),
    "tod_late": ("Late-evening", ""),
    "tod_morning": ("Morning", ""),
    "weekend_share": ("Weekend", "Weekday"),
    "place_home": ("Homebody", "Out-and-about"),
    "place_work": ("Office", ""),
    "place_moving": ("On-the-move", ""),
    "distinct_places": ("Explorer", ""),
    "radius_of_gyration_km": ("Roaming", "Local"),
    "app_games": ("Gamer", ""),
    "app_music_video": ("Streamer", ""),
    "app_shopping": ("Shopper", ""),
    "app_news": ("News reader", ""),
    "app_productivity": ("Professional", ""),
    "app_social": ("Social", ""),
    "app_maps_travel": ("Traveller", ""),
    "view_to_cart": ("Deal hunter", ""),
    "offer_accept_rate": ("Offer lover", ""),
    "purchases_per_week": ("Big spender", ""),
}


@dataclass(frozen=True)
class Persona:
    id: str
    name: str
    traits: tuple[str, ...]  # the features where it stands out, "+name" or "-name"
    centroid: tuple[float, ...]  # in feature units, schema order


@dataclass(frozen=True)
class Trained:
    personas: tuple[Persona, ...]  # in the model's class order
    pipeline: Pipeline  # the distilled classifier, exported to ONNX
    clustering: Pipeline  # standardisation and k-means: the clusters the personas are
    labels: np.ndarray  # cluster (class index) of each training vector
    agreement: float  # distilled model vs clustering, held-out devices
    cluster_sizes: tuple[int, ...]
    clustered_rows: int  # vectors k-means was fitted on (all, or a uniform sample)
    distilled_rows: int  # vectors the shipped MLP learnt from (all, or 3/4 of a sample)

    def gates(self, model_bytes: int) -> dict[str, bool]:
        return {
            "agreement": self.agreement >= MIN_AGREEMENT,
            "size": model_bytes <= MAX_MODEL_BYTES,
        }

    def assign(self, vectors: np.ndarray) -> np.ndarray:
        """The cluster (class index) of each of ``vectors``: what ``labels`` holds for the
        training vectors, for any others (by nearest centroid, as k-means labels)."""
        labels: np.ndarray = self.clustering.predict(vectors)
        return labels


def train(
    vectors: np.ndarray,
    *,
    k: int,
    previous: Sequence[Persona] = (),
    seed: int = 0,
    max_cluster_rows: int = MAX_CLUSTER_ROWS,
    max_distil_rows: int = MAX_DISTIL_ROWS,
) -> Trained:
    """Cluster ``vectors`` (devices x features) into ``k`` personas and distil a classifier.

    Beyond ``max_cluster_rows`` vectors, k-means is fitted on a uniform sample and labels
    the rest; beyond ``max_distil_rows``, the MLP learns from a stratified sample (see the
    module docstring). Raises ``ValueError`` when the data cannot give ``k`` personas.
    """
    if vectors.ndim != 2 or vectors.shape[1] != len(FEATURES):
        raise ValueError(
            f"expected an (n, {len(FEATURES)}) array of schema-v{SCHEMA_VERSION} vectors"
        )
    if len(vectors) < 5 * k:
        raise ValueError(f"{len(vectors)} devices are too few for {k} personas (need {5 * k})")
    scaler = StandardScaler().fit(vectors)
    z = scaler.transform(vectors)
    kmeans = KMeans(n_clusters=k, n_init=10, random_state=seed)
    if len(z) <= max_cluster_rows:
        clustered = len(z)
        labels = kmeans.fit(z).labels_
    else:
        rows = np.random.default_rng(seed).choice(len(z), max_cluster_rows, replace=False)
        clustered = max_cluster_rows
        labels = kmeans.fit(z[np.sort(rows)]).predict(z)
    centroids = scaler.inverse_transform(kmeans.cluster_centers_)
    personas = _identify(centroids, kmeans.cluster_centers_, previous)
    every_row = len(vectors) <= max_distil_rows
    split: dict[str, float | int] = (
        {"test_size": 0.25}
        if every_row
        else {
            "train_size": max_distil_rows - max_distil_rows // 4,
            "test_size": max_distil_rows // 4,
        }
    )
    train_x, test_x, train_y, test_y = train_test_split(
        vectors, labels, **split, random_state=seed, stratify=labels
    )
    pipeline = _classifier(seed).fit(train_x, train_y)
    agreement = float(np.mean(pipeline.predict(test_x) == test_y))
    if every_row:  # every device counts: the shipped model sees them all
        pipeline = _classifier(seed).fit(vectors, labels)
    sizes = tuple(int(n) for n in np.bincount(labels, minlength=k))
    clustering = Pipeline([("scale", scaler), ("kmeans", kmeans)])
    distilled = len(vectors) if every_row else len(train_x)
    return Trained(
        tuple(personas), pipeline, clustering, labels, agreement, sizes, clustered, distilled
    )


class Reservoir:
    """A uniform random sample of at most ``size`` rows of a stream of chunks, in stream order.

    Each row draws a random key and the rows with the ``size`` smallest keys are kept: every
    subset of that size is equally likely, and the sample does not depend on how the stream
    is cut into chunks (the keys are drawn in row order from one generator). Until the stream
    exceeds ``size`` rows, the sample is the stream itself. Memory: ``size`` rows plus a chunk.
    """

    def __init__(self, size: int, width: int, seed: int) -> None:
        self.size = size
        self.seen = 0  # rows added so far
        self.rows = np.empty((0, width), dtype=np.float32)  # the sample
        self._keys = np.empty(0)
        self._rng = np.random.default_rng(seed)

    def add(self, chunk: np.ndarray) -> None:
        """Offer the rows of ``chunk`` (float32, ``width`` columns) to the sample."""
        self.seen += len(chunk)
        self.rows = np.concatenate([self.rows, chunk])
        self._keys = np.concatenate([self._keys, self._rng.random(len(chunk))])
        if len(self._keys) > self.size:
            keep = np.sort(np.argpartition(self._keys, self.size)[: self.size])
            self.rows, self._keys = self.rows[keep], self._keys[keep]


def _classifier(seed: int) -> Pipeline:
    return Pipeline(
        [
            ("scale", StandardScaler()),
            ("mlp", MLPClassifier(hidden_layer_sizes=(32,), max_iter=2000, random_state=seed)),
        ]
    )


def _identify(
    centroids: np.ndarray, centroids_z: np.ndarray, previous: Sequence[Persona]
) -> list[Persona]:
    """Ids and names: inherited from the nearest previous persona, else from traits."""
    traits = [_traits(row) for row in centroids_z]
    ids: list[str | None] = [None] * len(centroids)
    names: list[str | None] = [None] * len(centroids)
    if previous:
        old = np.array([p.centroid for p in previous])
        scale = np.maximum(np.std(np.vstack([old, centroids]), axis=0), 1e-6)
        cost = np.linalg.norm((centroids[:, None, :] - old[None, :, :]) / scale, axis=2)
        for new, prior in zip(*linear_sum_assignment(cost), strict=True):
            ids[new], names[new] = previous[prior].id, previous[prior].name
    taken = {i for i in ids if i} | {p.id for p in previous}
    result = []
    for index, centroid in enumerate(centroids):
        name = names[index] or _name(traits[index])
        persona_id = ids[index] or _fresh_id(name, taken)
        taken.add(persona_id)
        result.append(Persona(persona_id, name, traits[index], tuple(float(v) for v in centroid)))
    return result


def _traits(z_row: np.ndarray, top: int = 3) -> tuple[str, ...]:
    order = np.argsort(-np.abs(z_row))[:top]
    return tuple(("+" if z_row[i] >= 0 else "-") + FEATURE_NAMES[i] for i in order)


def _name(traits: Sequence[str]) -> str:
    words = []
    for trait in traits:
        high, low = _TRAIT_WORDS.get(trait[1:], ("", ""))
        word = high if trait[0] == "+" else low
        if word and word not in words:
            words.append(word)
    return " ".join(words[:2]) or "Balanced user"


def _fresh_id(name: str, taken: set[str]) -> str:
    base = "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_") or "persona"
    candidate, n = base, 2
    while candidate in taken:
        candidate, n = f"{base}_{n}", n + 1
    return candidate


def agreement_with_truth(labels: np.ndarray, truth: Sequence[str]) -> float:
    """Adjusted Rand index of a clustering against known personas (synthetic data)."""
    return float(adjusted_rand_score(list(truth), labels))


def export_onnx(trained: Trained, *, version: int) -> bytes:
    """The distilled classifier as ONNX, with the schema and personas in its metadata."""
    sample = np.zeros((1, len(FEATURES)), dtype=np.float32)
    classifier = trained.pipeline.steps[-1][1]
    model = to_onnx(
        trained.pipeline,
        sample,
        options={id(classifier): {"zipmap": False}},
        target_opset={"": 17, "ai.onnx.ml": 3},
    )
    # skl2onnx collects opsets in a set: fix their order so the same model gives the same bytes.
    opsets = sorted((o.domain, o.version) for o in model.opset_import)
    del model.opset_import[:]
    for domain, opset in opsets:
        model.opset_import.add(domain=domain, version=opset)
    metadata = {
        "schema_version": str(SCHEMA_VERSION),
        "model_version": str(version),
        "features": json.dumps(list(FEATURE_NAMES)),
        "personas": json.dumps([{"id": p.id, "name": p.name} for p in trained.personas]),
    }
    del model.metadata_props[:]
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    model.producer_name, model.producer_version = "edgepersona", str(version)
    return model.SerializeToString()
