import pytest

from memory_mosaics.moons.evaluate import context_grid, stays_below


def test_context_grid_every_fifth_like_the_reference_range():
    g = context_grid(800, 25, 5)
    assert g[0] == 1 and g[1] == 6 and g[-1] == 771 and all(c % 5 == 1 for c in g)
    assert context_grid(800, 25, 1) == list(range(1, 775))
    with pytest.raises(ValueError):
        context_grid(800, 25, 0)


def test_stays_below_is_the_last_crossing():
    cs = [1, 6, 11, 16, 21]
    assert stays_below(cs, [0.5, 0.05, 0.2, 0.09, 0.01]) == 16  # a dip before 16 does not count
    assert stays_below(cs, [0.05] * 5) == 1
    assert stays_below(cs, [0.05, 0.05, 0.05, 0.05, 0.3]) is None
    assert stays_below(cs, [0.5, 0.5, 0.1, 0.09, 0.09]) == 16  # "below" is strict
    assert stays_below(cs, [0.5, float("nan"), 0.05, 0.05, 0.05]) == 11
