"""Reciprocal-rank fusion of the full-text and nearest-neighbour lists (the local hybrid retriever)."""

from __future__ import annotations

import pytest

from shared.knowledge.vectors import reciprocal_rank_fusion
from shared.storage.knowledge import KnowledgeHit


def hits(*ranked: tuple[str, float]) -> list[KnowledgeHit]:
    return [KnowledgeHit(title="t", body=chunk, rank=rank, chunk_id=chunk) for chunk, rank in ranked]


def order(fused: list[KnowledgeHit]) -> list[str]:
    return [h.chunk_id for h in fused]


def test_a_chunk_both_lists_find_beats_one_only_a_single_list_puts_first() -> None:
    fused = reciprocal_rank_fusion([hits(("a", 0.9), ("b", 0.5)), hits(("c", 0.8), ("b", 0.7))])

    assert order(fused) == ["b", "a", "c"]
    assert fused[0].rank == pytest.approx(2 / 62)
    assert fused[1].rank == pytest.approx(1 / 61)


def test_chunks_one_list_ranks_the_same_share_a_place_so_the_other_list_decides() -> None:
    text = hits(("universe", 0.1), ("university", 0.1), ("other", 0.05))
    near = hits(("university", 0.9), ("universe", 0.2))

    fused = reciprocal_rank_fusion([text, near])

    assert order(fused) == ["university", "universe", "other"]
    assert fused[0].rank == pytest.approx(2 / 61)
    assert fused[1].rank == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2].rank == pytest.approx(1 / 63)


def test_equal_fused_scores_keep_the_order_of_the_earlier_list() -> None:
    fused = reciprocal_rank_fusion([hits(("a", 0.9), ("b", 0.5)), hits(("b", 0.9), ("a", 0.5))])

    assert order(fused) == ["a", "b"]


def test_one_empty_list_leaves_the_other_as_it_was() -> None:
    assert order(reciprocal_rank_fusion([[], hits(("x", 0.9), ("y", 0.3))])) == ["x", "y"]
    assert reciprocal_rank_fusion([[], []]) == []
