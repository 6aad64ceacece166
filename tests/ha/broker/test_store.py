"""The metadata store against real files: direct I/O where the file system allows
it, the buffered fallback on tmpfs, the bounded area, bad slots skipped."""
import errno
import logging
import os

import pytest

from ovirt_hosted_engine_setup.ha import metadata
from ovirt_hosted_engine_setup.ha.broker import store as store_mod
from ovirt_hosted_engine_setup.ha.broker.store import MetadataStore, StoreError, max_hosts_for_size

SLOT = metadata.SLOT_SIZE


def make_volume(directory, size, fill=b'\0'):
    path = os.path.join(directory, 'metadata')
    with open(path, 'wb') as f:
        f.write(fill * size)
    return path


def host_slot(host_id, ts=100, score=3400):
    return metadata.serialize_host(host_id, ts, score, {'vm': 'down', 'health': 'bad',
                                                        'detail': 'unknown', 'reason': None},
                                   'host%d' % host_id, state='EngineDown')


def test_max_hosts_bounded():
    assert max_hosts_for_size(1 << 20) == 250
    assert max_hosts_for_size(8 << 20) == 250
    assert max_hosts_for_size(3 * SLOT) == 2
    assert max_hosts_for_size(SLOT) == 0


def test_direct_io_round_trip(direct_dir):
    path = make_volume(direct_dir, 1 << 20)
    st = MetadataStore(path)
    assert st.max_hosts == 250
    st.write_slot(3, host_slot(3))
    st.write_slot(0, metadata.serialize_global(True))
    assert st.direct is True
    data, delay = st.read_area()
    assert st.direct is True
    assert len(data) == 251 * SLOT and delay >= 0
    view = metadata.parse_area(data, st.max_hosts)
    assert view.global_maintenance is True
    assert set(view.hosts) == {3} and view.hosts[3].hostname == 'host3'
    with open(path, 'rb') as f:
        f.seek(3 * SLOT)
        assert f.read(SLOT) == host_slot(3)


def test_area_bounded_to_volume(direct_dir):
    # A small volume (3 host slots) with garbage after it would be: the area stops at slot 3.
    path = make_volume(direct_dir, 4 * SLOT)
    with open(path, 'ab') as f:
        f.write(b'\xff' * 100)      # a volume whose size is not a whole number of slots
    st = MetadataStore(path)
    assert st.max_hosts == 3
    st.write_slot(2, host_slot(2))
    data, _ = st.read_area()
    assert len(data) == 4 * SLOT
    view = metadata.parse_area(data, st.max_hosts)
    assert set(view.hosts) == {2} and view.skipped == ()
    with pytest.raises(StoreError, match='outside the metadata area'):
        st.write_slot(4, host_slot(4))


def test_garbage_torn_and_crc_slots_skipped(direct_dir):
    path = make_volume(direct_dir, 8 * SLOT)
    st = MetadataStore(path)
    st.write_slot(1, host_slot(1))
    st.write_slot(2, b'\x8b\x00garbage' + os.urandom(SLOT - 9))
    good = bytearray(host_slot(3))
    good[20] = ord('9') if good[20] != ord('9') else ord('8')   # CRC now wrong
    st.write_slot(3, bytes(good))
    torn = host_slot(4, ts=200)[:512] + host_slot(4, ts=100)[512:]
    st.write_slot(4, torn)
    st.write_slot(5, host_slot(5))
    data, _ = st.read_area()
    view = metadata.parse_area(data, st.max_hosts)
    assert set(view.hosts) == {1, 5}
    reasons = {s.slot: s.reason for s in view.skipped}
    assert reasons[2] == metadata.GARBAGE
    assert reasons[3] == metadata.CRC
    assert reasons[4] == metadata.TORN


def test_fallback_when_direct_io_refused(direct_dir, monkeypatch, caplog):
    """A file system that refuses O_DIRECT (EINVAL at open, as older tmpfs does):
    buffered I/O with O_SYNC, one warning."""
    if not store_mod.O_DIRECT:
        pytest.skip('no O_DIRECT on this platform')
    real_open = os.open
    refused = []

    def no_direct_open(path, flags, *args):
        if flags & store_mod.O_DIRECT:
            refused.append(path)
            raise OSError(errno.EINVAL, 'Invalid argument')
        return real_open(path, flags, *args)
    path = make_volume(direct_dir, 4 * SLOT)
    st = MetadataStore(path)
    monkeypatch.setattr(store_mod.os, 'open', no_direct_open)
    with caplog.at_level(logging.WARNING, logger=store_mod.__name__):
        st.write_slot(1, host_slot(1))
        st.write_slot(2, host_slot(2))
        data, _ = st.read_area()
        data2, _ = st.read_area()
    assert st.direct is False and len(refused) == 1
    warnings = [r for r in caplog.records if 'direct I/O' in r.getMessage()]
    assert len(warnings) == 1
    assert set(metadata.parse_area(data, st.max_hosts).hosts) == {1, 2}
    assert data2 == data


def test_missing_or_small_volume(direct_dir):
    with pytest.raises(StoreError, match='cannot open the metadata volume'):
        MetadataStore(os.path.join(direct_dir, 'nope'))
    path = make_volume(direct_dir, SLOT)
    with pytest.raises(StoreError, match='too small'):
        MetadataStore(path)
