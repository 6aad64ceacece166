from types import SimpleNamespace as NS

from ovirt_hosted_engine_setup.ha import liveness as lv
from ovirt_hosted_engine_setup.ha import metadata as md


def rec(ts):
    return NS(timestamp=ts)


def test_change_within_window_is_live_without_sanlock():
    seen = lv.observe({}, {2: rec(100)}, now=1000)
    assert lv.judge(seen, 2, 1000) == lv.DEAD          # no change seen yet
    seen = lv.observe(seen, {2: rec(110)}, now=1010)
    assert lv.judge(seen, 2, 1010) == lv.LIVE
    assert lv.judge(seen, 2, 1070) == lv.LIVE
    assert lv.judge(seen, 2, 1071) == lv.DEAD
    seen = lv.observe(seen, {2: rec(110)}, now=1071)   # unchanged: still dead
    assert lv.judge(seen, 2, 1071) == lv.DEAD


def test_only_change_matters_not_clock_values():
    seen = lv.observe({}, {2: rec(500000)}, now=10)
    seen = lv.observe(seen, {2: rec(3)}, now=20)      # writer's clock went backwards
    assert lv.judge(seen, 2, 20) == lv.LIVE


def test_sanlock_dead_is_dead_at_once():
    seen = lv.observe({}, {2: rec(1)}, now=0)
    seen = lv.observe(seen, {2: rec(2)}, now=10)
    assert lv.judge(seen, 2, 11, sanlock_live={2}) == lv.LIVE
    assert lv.judge(seen, 2, 11, sanlock_live=set()) == lv.DEAD


def test_sanlock_live_but_stale_metadata():
    seen = lv.observe({}, {2: rec(1)}, now=0)
    seen = lv.observe(seen, {2: rec(2)}, now=10)
    assert lv.judge(seen, 2, 100, sanlock_live={2}) == lv.STALE
    assert lv.judge(seen, 2, 190, sanlock_live={2}) == lv.STALE
    assert lv.judge(seen, 2, 191, sanlock_live={2}) == lv.DEAD
    # first sight of a host sanlock has: believed (stale), not yet a candidate
    seen = lv.observe({}, {3: rec(1)}, now=0)
    assert lv.judge(seen, 3, 0, sanlock_live={3}) == lv.STALE
    assert lv.judge(seen, 9, 0, sanlock_live={3, 9}) == lv.DEAD   # no slot at all


def test_last_good_copy_kept_for_skipped_slots():
    good = md.parse_host_slot(2, md.serialize_host(2, 7, 3400, {'vm': 'up'}, 'h2'))
    view = md.AreaView(False, {}, (md.Skipped(2, md.CRC), md.Skipped(3, md.GARBAGE)))
    assert lv.merge_last_good({2: good}, view) == {2: good}
    assert lv.merge_last_good({2: good}, md.AreaView(False, {}, ())) == {}
