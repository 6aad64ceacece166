import json
import zlib

import pytest

from ovirt_hosted_engine_setup.ha import metadata as md

STATUS = {'vm': 'up', 'health': 'good', 'detail': 'Up', 'reason': None}


def slot(host_id=3, ts=12345, **kw):
    return md.serialize_host(host_id, ts, 3400, STATUS, 'host-%d.example' % host_id,
                             state='EngineUp', **kw)


def test_round_trip_and_layout():
    data = slot()
    assert len(data) == md.SLOT_SIZE
    header = data[:512].rstrip(b'\0').decode()
    fields = header.split('|')
    assert fields[:5] == ['1', '1', '12345', '3', '3400']
    assert json.loads(fields[5]) == STATUS
    assert fields[6:9] == ['host-3.example', '0', '0']
    assert len(fields[9]) == 8 and fields[9] == fields[9].lower()
    assert fields[10:] == ['1', '0']
    zeroed = header.replace(fields[9], md.CRC_PLACEHOLDER).encode().ljust(512, b'\0')
    assert '%08x' % zlib.crc32(zeroed) == fields[9]
    extra = data[512:].rstrip(b'\0').decode()
    assert 'host-id=3\n' in extra and 'state=EngineUp\n' in extra and 'score=3400\n' in extra
    rec = md.parse_host_slot(3, data)
    assert isinstance(rec, md.HostRecord)
    assert (rec.host_id, rec.timestamp, rec.score, rec.hostname, rec.state) == \
        (3, 12345, 3400, 'host-3.example', 'EngineUp')
    assert rec.engine_status == STATUS


def test_flags_round_trip():
    rec = md.parse_host_slot(2, md.serialize_host(2, 1, 0, STATUS, 'h', local_maintenance=True,
                                                  stopped=True, conf_on_shared_storage=False,
                                                  local_conf_timestamp=77))
    assert rec.local_maintenance and rec.stopped and not rec.conf_on_shared_storage
    assert rec.local_conf_timestamp == 77


def test_pipe_in_values_keeps_the_format():
    data = md.serialize_host(1, 5, 10, {'vm': 'down', 'reason': 'a|b'}, 'x|y')
    rec = md.parse_host_slot(1, data)
    assert rec.engine_status['reason'] == 'a|b'
    assert rec.hostname == 'x_y'


def test_empty_slot_is_none():
    assert md.parse_host_slot(1, bytes(4096)) is None


@pytest.mark.parametrize('mangle,reason', [
    (lambda d: bytes((i * 7) % 255 + 1 for i in range(4096)), md.GARBAGE),
    (lambda d: b'\xff\xfe' + d[2:], md.GARBAGE),
    (lambda d: d[:20] + b'\0' * 10 + d[30:], md.GARBAGE),
    (lambda d: d.replace(b'|3400|', b'|3401|', 1), md.CRC),
    (lambda d: b'2' + d[1:], md.TOO_NEW),
    (lambda d: d[:512] + slot(ts=99999)[512:], md.TORN),
    (lambda d: bytes(512) + d[512:], md.TORN),
    (lambda d: d[:300], md.TORN),
    (lambda d: d[:40].ljust(4096, b'\0'), md.TORN),
    (lambda d: d[:512] + b'\xff\xfe bad' + d[518:], md.TORN),
])
def test_corruption_is_skipped_with_a_reason(mangle, reason):
    result = md.parse_host_slot(3, mangle(slot()))
    assert isinstance(result, md.Skipped), result
    assert result.reason == reason
    assert 'slot 3 skipped (%s)' % reason in str(result)


def test_slot_of_another_host_id_is_skipped():
    result = md.parse_host_slot(4, slot(3))
    assert isinstance(result, md.Skipped) and result.reason == md.WRONG_ID


def test_global_block():
    assert md.parse_global(md.serialize_global(True)) == (True, None)
    assert md.parse_global(md.serialize_global(False)) == (False, None)
    assert md.parse_global(bytes(4096)) == (False, None)
    flag, problem = md.parse_global(b'\x01\x02garbage'.ljust(4096, b'\0'))
    assert flag is False and problem.reason == md.GARBAGE
    flag, problem = md.parse_global(b'maintenance=yes\n'.ljust(4096, b'\0'))
    assert flag is False and problem.slot == 0


def test_area_is_bounded_and_never_stops_on_bad_slots():
    area = bytearray(md.area_size(4) + 8 * 4096)
    area[0:4096] = md.serialize_global(True)
    area[4096:8192] = slot(1)
    area[2 * 4096:3 * 4096] = b'junk' * 1024
    area[3 * 4096:4 * 4096] = b'2' + slot(3)[1:]
    area[4 * 4096:5 * 4096] = slot(4)
    area[6 * 4096:7 * 4096] = slot(6)      # beyond what deploy initialised: never read
    view = md.parse_area(bytes(area), 4)
    assert view.global_maintenance is True
    assert sorted(view.hosts) == [1, 4]
    assert [(s.slot, s.reason) for s in view.skipped] == [(2, md.GARBAGE), (3, md.TOO_NEW)]
    assert md.area_size(4) == 5 * 4096


def test_host_id_out_of_range_is_refused():
    with pytest.raises(ValueError):
        md.serialize_host(0, 1, 1, STATUS, 'h')
    with pytest.raises(ValueError):
        md.serialize_host(251, 1, 1, STATUS, 'h')


def test_status_report_json_keys():
    slots = [md.serialize_global(True), slot(1), b'junk'.ljust(4096, b'\0'), slot(3)]
    report = md.status_report(md.parse_slots(slots, 3), {1})
    assert sorted(report) == ['1', '3', 'global_maintenance']
    assert report['global_maintenance'] is True
    one = report['1']
    assert sorted(one) == sorted(['host-id', 'host-ts', 'score', 'engine-status', 'hostname',
                                  'maintenance', 'stopped', 'crc32', 'conf_on_shared_storage',
                                  'local_conf_timestamp', 'extra', 'live-data'])
    assert one['live-data'] is True and report['3']['live-data'] is False
    assert one['engine-status'] == STATUS and 'state=EngineUp\n' in one['extra']
    json.dumps(report)
