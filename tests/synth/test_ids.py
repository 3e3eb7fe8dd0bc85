import re

from cirlab.synth.ids import IdAllocator, is_asin_like
from cirlab.synth.randomness import stream


def test_ids_look_like_asins_and_are_unique():
    allocator = IdAllocator(stream(0, "ids"))
    ids = [allocator.next() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"B0[0-9A-Z]{8}", i) and is_asin_like(i) for i in ids)
    assert not is_asin_like("b0abcdefgh") and not is_asin_like("B0ABC")


def test_ids_are_deterministic():
    first = IdAllocator(stream(7, "ids"))
    second = IdAllocator(stream(7, "ids"))
    assert [first.next() for _ in range(10)] == [second.next() for _ in range(10)]
