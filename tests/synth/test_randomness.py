from cirlab.synth.randomness import stream, weighted_sample


def test_streams_are_reproducible_and_independent():
    assert [stream(3, "ids").random() for _ in range(2)] == [stream(3, "ids").random()] * 2
    draws = {(seed, stage, key): stream(seed, stage, key).random()
             for seed in (0, 1) for stage in ("ids", "captions") for key in ("dress", "shirt")}
    assert len(set(draws.values())) == len(draws)


def test_weighted_sample_is_distinct_and_respects_zero_weight():
    rng = stream(0, "test")
    for _ in range(200):
        chosen = weighted_sample(rng, ["a", "b", "c", "d"], [1.0, 1.0, 0.0, 2.0], 3)
        assert len(set(chosen)) == 3
        assert "c" not in chosen[:2]  # zero weight: drawn only once nothing else is left
    assert weighted_sample(rng, ["a"], [1.0], 4) == ["a"]
