"""The speaker verifier: a small projection of frozen voice embeddings (resemblyzer's 256-d), trained on
same/different-speaker pairs with a logistic loss on scaled cosine, plainly or with adversarial reweighting
(arw.py); scores are cosines of the L2-normalised projections."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from analysis.verification.arw import ClusterAdversary, weighted_pair_loss

VERSION = 1
METHODS = ("plain", "arw")


def _torch():
    import torch

    return torch


@dataclass(frozen=True)
class VerifierConfig:
    """How a verifier is built and trained (defaults sized for a few hundred training speakers: seconds on a CPU).

    Network: the input is centred on the training mean (resemblyzer's vectors are all-positive, so their raw
    cosines crowd near 0.7), then ``hidden`` units with ReLU and ``dropout`` (0 = a linear map), then ``dim``
    outputs, L2-normalised. Loss: softplus(-y (scale * cos + bias)) with y = +1 for a same-speaker pair and -1
    otherwise; scale and bias are learned (initialised at ``init_scale`` and ``init_bias``: cos = 0.5 sits at the
    decision boundary). Batches: ``speakers_per_batch`` training speakers x ``turns_per_speaker`` of their turns,
    every pair in the batch is a trial (32 x 4 gives 192 same- and 7,936 different-speaker pairs), class-balanced
    (arw.weighted_pair_loss). AdamW with ``lr`` and ``weight_decay`` for ``steps`` steps.

    ARW (method "arw", arw.py): ``clusters`` k-means clusters of the training samples; the adversary starts after
    ``warmup_steps`` and then takes one Adam ascent step (``adversary_lr``) per ``verifier_steps_per_adversary_step``
    verifier steps; ``kl_weight`` keeps it from putting all the weight on one cluster.

    seed: initialisation, batches and k-means; the same seed, data and torch threads give the same verifier.
    """

    hidden: int = 128
    dim: int = 64
    dropout: float = 0.1
    init_scale: float = 10.0
    init_bias: float = -5.0
    steps: int = 400
    speakers_per_batch: int = 32
    turns_per_speaker: int = 4
    lr: float = 2e-3
    weight_decay: float = 1e-3
    clusters: int = 8
    warmup_steps: int = 100
    verifier_steps_per_adversary_step: int = 1
    adversary_lr: float = 0.05
    kl_weight: float = 0.01
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("dim", "steps", "speakers_per_batch", "clusters", "verifier_steps_per_adversary_step"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.turns_per_speaker < 2:
            raise ValueError(f"turns_per_speaker must be at least 2, got {self.turns_per_speaker}")
        if self.hidden < 0 or not 0 <= self.dropout < 1 or self.warmup_steps < 0:
            raise ValueError("hidden and warmup_steps must be >= 0 and dropout in [0, 1)")
        if self.lr <= 0 or self.adversary_lr <= 0 or self.kl_weight < 0 or self.weight_decay < 0:
            raise ValueError("lr and adversary_lr must be > 0, kl_weight and weight_decay >= 0")


def data_fingerprint(embeddings: np.ndarray, speakers: Sequence[str]) -> str:
    """sha256 (first 16 hex digits) of the training embeddings (as float32) and their speakers."""
    h = hashlib.sha256(np.ascontiguousarray(embeddings, dtype=np.float32).tobytes())
    h.update(json.dumps([str(s) for s in speakers]).encode())
    return h.hexdigest()[:16]


def _build(config: VerifierConfig, input_dim: int):
    torch = _torch()
    nn = torch.nn
    if config.hidden:
        body = nn.Sequential(nn.Linear(input_dim, config.hidden), nn.ReLU(), nn.Dropout(config.dropout),
                             nn.Linear(config.hidden, config.dim))
    else:
        body = nn.Linear(input_dim, config.dim)
    net = nn.Module()
    net.body = body
    net.scale = nn.Parameter(torch.tensor(float(config.init_scale)))
    net.bias = nn.Parameter(torch.tensor(float(config.init_bias)))
    net.register_buffer("mean", torch.zeros(input_dim))
    return net


class Verifier:
    """A trained projection: ``embed`` maps (n, d) voice embeddings to (n, dim) unit vectors, ``score`` gives
    the cosine of two embeddings' projections (in [-1, 1], higher = more likely the same speaker).

    Checkpoints (``save_pretrained``) carry the config, method, version, input size, the training data's
    fingerprint and size, and the adversary's final cluster weights (ARW)."""

    CONFIG_FILE = "config.json"
    WEIGHTS_FILE = "weights.pt"

    def __init__(self, config: VerifierConfig, *, input_dim: int, method: str = "plain"):
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        self.config = config
        self.method = method
        self.input_dim = int(input_dim)
        self.net = _build(config, self.input_dim)
        self.fingerprint: str | None = None
        self.n_train = 0
        self.n_speakers = 0
        self.cluster_weights: list[float] | None = None  # ARW: the adversary's final w_c
        self.cluster_shares: list[float] | None = None  # ARW: pi_c, each cluster's share of the training turns
        self.history: list[dict] = []  # per logged step: loss, adversary objective and weights

    def _project(self, x):
        torch = _torch()
        z = self.net.body(x - self.net.mean)
        return torch.nn.functional.normalize(z, dim=-1)

    def embed(self, embeddings: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
        """(n, dim) float64 unit vectors of (n, input_dim) embeddings."""
        torch = _torch()
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"embeddings must be (n, {self.input_dim}), got {x.shape}")
        self.net.eval()
        out = []
        with torch.inference_mode():
            for s in range(0, len(x), batch_size):
                out.append(self._project(torch.from_numpy(x[s:s + batch_size])).double().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.config.dim))

    def score(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Cosine of the projections of a and b, row by row: (n,) for (n, d) inputs, a float array of shape ()
        for two (d,) vectors. Higher = more likely the same speaker."""
        a2, b2 = np.atleast_2d(a), np.atleast_2d(b)
        if a2.shape != b2.shape:
            raise ValueError(f"a and b must have the same shape, got {a2.shape} and {b2.shape}")
        s = np.einsum("ij,ij->i", self.embed(a2), self.embed(b2))
        return s.reshape(np.shape(a)[:-1])

    def score_pairs(self, embeddings: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """(m,) scores of trials given as row indices a, b into embeddings (each row projected once)."""
        z = self.embed(embeddings)
        return np.einsum("ij,ij->i", z[a], z[b])

    def save_pretrained(self, directory: str | Path) -> Path:
        """Write config.json (config, method, version, input size, data fingerprint, sizes, cluster weights)
        and weights.pt."""
        torch = _torch()
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {"version": VERSION, "method": self.method, "config": asdict(self.config),
                "input_dim": self.input_dim, "data_fingerprint": self.fingerprint, "n_train": self.n_train,
                "n_speakers": self.n_speakers, "cluster_weights": self.cluster_weights,
                "cluster_shares": self.cluster_shares}
        (d / self.CONFIG_FILE).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        torch.save(self.net.state_dict(), d / self.WEIGHTS_FILE)
        return d

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Verifier:
        """Load a checkpoint written by save_pretrained; ValueError on another version or unknown config key."""
        torch = _torch()
        d = Path(directory)
        meta = json.loads((d / cls.CONFIG_FILE).read_text())
        if meta.get("version") != VERSION:
            raise ValueError(f"{d}: checkpoint version {meta.get('version')!r}, this code reads {VERSION!r}")
        known = {f.name for f in fields(VerifierConfig)}
        unknown = set(meta["config"]) - known
        if unknown:
            raise ValueError(f"{d}: unknown config keys {sorted(unknown)}")
        v = cls(VerifierConfig(**meta["config"]), input_dim=meta["input_dim"], method=meta["method"])
        v.net.load_state_dict(torch.load(d / cls.WEIGHTS_FILE, weights_only=True))
        v.fingerprint, v.n_train, v.n_speakers = meta["data_fingerprint"], meta["n_train"], meta["n_speakers"]
        v.cluster_weights, v.cluster_shares = meta.get("cluster_weights"), meta.get("cluster_shares")
        return v


def raw_cosine(embeddings: np.ndarray, a: np.ndarray, b: np.ndarray, *, centre: np.ndarray | None = None
               ) -> np.ndarray:
    """The untrained baseline: cosine of the input embeddings of trials (row indices a, b), after subtracting
    ``centre`` if given (e.g. the training mean)."""
    x = np.asarray(embeddings, dtype=np.float64)
    if centre is not None:
        x = x - np.asarray(centre, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    return np.einsum("ij,ij->i", x[a], x[b])


def _batch(rng: np.random.Generator, rows_of: list[np.ndarray], p: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """p speakers at random, k of their turns each (without replacement when they have k); returns the rows and
    each row's speaker position in the batch."""
    chosen = rng.choice(len(rows_of), size=min(p, len(rows_of)), replace=False)
    rows, who = [], []
    for pos, s in enumerate(chosen):
        r = rows_of[s]
        rows.append(rng.choice(r, size=k, replace=len(r) < k))
        who.append(np.full(k, pos))
    return np.concatenate(rows), np.concatenate(who)


def train_verifier(embeddings: np.ndarray, speakers: Sequence[str], *, config: VerifierConfig | None = None,
                   method: str = "plain", clusters: np.ndarray | None = None,
                   progress: Callable[[int, int], None] | None = None) -> Verifier:
    """Train a verifier on (n, d) voice embeddings, one per turn, with each turn's speaker id.

    method: "plain" (every pair weight 2, i.e. the unweighted loss) or "arw" (arw.py). clusters: ARW's cluster
    of each training turn (0..k-1); None fits k-means (``config.clusters``) on the embeddings. Only speakers with
    at least 2 turns make batches. progress(step, total) after each step. Deterministic for (inputs, config,
    torch threads)."""
    torch = _torch()
    config = config or VerifierConfig()
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    x = np.asarray(embeddings, dtype=np.float32)
    spk = np.asarray([str(s) for s in speakers], dtype=object)
    if x.ndim != 2 or len(x) != len(spk):
        raise ValueError(f"embeddings must be (n, d) with one speaker per row, got {x.shape} and {len(spk)}")
    if not np.isfinite(x).all():
        raise ValueError("embeddings must be finite")
    names, codes = np.unique(spk.astype(str), return_inverse=True)
    rows_of = [r for r in (np.flatnonzero(codes == i) for i in range(len(names))) if len(r) >= 2]
    if len(rows_of) < 2:
        raise ValueError("need at least 2 speakers with 2 or more turns each")
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    v = Verifier(config, input_dim=x.shape[1], method=method)
    v.fingerprint, v.n_train, v.n_speakers = data_fingerprint(x, spk), len(x), len(names)
    with torch.no_grad():
        v.net.mean.copy_(torch.from_numpy(x.mean(axis=0)))
    adversary = None
    if method == "arw":
        if clusters is None:
            from analysis.disparity.cohorts import kmeans_cohorts

            clusters = kmeans_cohorts(x, k=min(config.clusters, len(x)), seed=config.seed).labels
        clusters = np.asarray(clusters, dtype=np.int64)
        if len(clusters) != len(x):
            raise ValueError(f"{len(clusters)} clusters for {len(x)} embeddings")
        adversary = ClusterAdversary(clusters, lr=config.adversary_lr, kl_weight=config.kl_weight)
    xt = torch.from_numpy(x)
    opt = torch.optim.AdamW(v.net.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    # the scale and bias are not shrunk towards 0: weight decay on them would only blur the loss
    opt.param_groups[0]["params"] = [p for n, p in v.net.named_parameters() if n.startswith("body.")]
    opt.add_param_group({"params": [v.net.scale, v.net.bias], "weight_decay": 0.0})
    k = config.turns_per_speaker
    log_every = max(1, config.steps // 20)
    for step in range(config.steps):
        v.net.train()
        rows, who = _batch(rng, rows_of, config.speakers_per_batch, k)
        iu, ju = np.triu_indices(len(rows), k=1)
        same = torch.from_numpy(who[iu] == who[ju])
        z = v._project(xt[rows])
        cos = (z[iu] * z[ju]).sum(dim=1)
        sign = same.to(cos.dtype) * 2 - 1
        loss_pairs = torch.nn.functional.softplus(-sign * (v.net.scale * cos + v.net.bias))
        active = adversary is not None and step >= config.warmup_steps
        if active:
            with torch.no_grad():
                w = adversary.sample_weights(torch.from_numpy(rows)).float()
            pair_w = w[iu] + w[ju]
        else:
            pair_w = torch.full_like(loss_pairs, 2.0)
        loss = weighted_pair_loss(loss_pairs, same, pair_w)
        opt.zero_grad()
        loss.backward()
        opt.step()
        entry: dict = {}
        if active and (step - config.warmup_steps + 1) % config.verifier_steps_per_adversary_step == 0:
            entry["adversary_objective"] = adversary.step(torch.from_numpy(rows), torch.from_numpy(iu),
                                                          torch.from_numpy(ju), loss_pairs, same)
        if step % log_every == 0 or step == config.steps - 1:
            entry.update(step=step, loss=float(loss.detach()))
            if adversary is not None:
                entry["cluster_weights"] = [round(float(c), 4) for c in adversary.cluster_weights().detach()]
            v.history.append(entry)
        if progress:
            progress(step + 1, config.steps)
    if adversary is not None:
        v.cluster_weights = [float(c) for c in adversary.cluster_weights().detach()]
        v.cluster_shares = [float(c) for c in adversary.share]
    v.net.eval()
    if not math.isfinite(v.history[-1]["loss"]):
        raise RuntimeError("training diverged (the loss is not finite): lower lr")
    return v
