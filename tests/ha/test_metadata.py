import binascii
import json
import re
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
    # the crc32 is over the '|'-joined tokens with the crc token zeroed, not the padded 512 bytes
    zeroed = header.replace(fields[9], md.CRC_PLACEHOLDER).encode()
    assert '%08x' % (zlib.crc32(zeroed) & 0xffffffff) == fields[9]
    assert '%08x' % (zlib.crc32(zeroed.ljust(512, b'\0')) & 0xffffffff) != fields[9]
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
    # with or without a trailing newline (this project wrote one before)
    assert md.parse_global(b'maintenance=1\n'.ljust(4096, b'\0')) == (True, None)
    assert md.parse_global(b'maintenance=1'.ljust(4096, b'\0')) == (True, None)
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


# -- interoperability with oVirt's agents (ovirt-hosted-engine-ha 2.x) -------------------
#
# The format facts: an oVirt agent writes, in the first 512 bytes, the tokens
#   parse version|feature version|timestamp|host id|score|engine status (json.dumps, default
#   separators)|hostname|maintenance|stopped|crc32|conf_on_shared_storage|local_conf_timestamp
# where crc32 is '%08x' of binascii.crc32 & 0xffffffff of the '|'-joined tokens with the crc
# token '00000000'; then, from byte 512, the key=value lines; NUL padding to 4096 bytes.
# Older agents wrote fewer tokens (7: up to the hostname; 8: with maintenance; 9: stopped).
# Its parser: parse version = first digits, refused when newer than its feature version;
# at least 7 tokens; feature version lower than its parse version -> ignored; crc checked
# when the token is there; the host id must be the slot's.

def ovirt_slot(host_id, ts, score=3400, status=None, hostname=None, *, maintenance=0,
               stopped=0, conf_on_shared_storage=1, local_conf_timestamp=0, state='EngineUp',
               ntokens=12, parse_version=1, feature_version=1, status_text=None):
    """A host slot laid out exactly as oVirt's agent writes it."""
    status = {'vm': 'up', 'health': 'good', 'detail': 'Up', 'reason': ''} \
        if status is None else status
    hostname = hostname or 'ovirt-host%d.example' % host_id
    tokens = [parse_version, feature_version, ts, host_id, score,
              json.dumps(status) if status_text is None else status_text, hostname,
              maintenance, stopped, '00000000', conf_on_shared_storage, local_conf_timestamp]
    tokens = [str(t) for t in tokens[:ntokens]]
    if ntokens > 9:
        tokens[9] = '%08x' % (binascii.crc32('|'.join(tokens).encode()) & 0xffffffff)
    header = '|'.join(tokens).encode()
    info = ('metadata_parse_version=%d\nmetadata_feature_version=%d\n'
            'timestamp=%d (Thu Dec  3 09:00:00 2026)\nhost-id=%d\nscore=%d\n'
            'vm_conf_refresh_time=%d (Thu Dec  3 08:59:00 2026)\nconf_on_shared_storage=%s\n'
            'maintenance=%s\nstate=%s\nstopped=%s\n' % (
                parse_version, feature_version, ts, host_id, score, local_conf_timestamp,
                bool(conf_on_shared_storage), bool(maintenance), state, bool(stopped))).encode()
    info = info.ljust(512 * ((len(info) + 511) // 512), b'\0')
    return (header.ljust(512, b'\0') + info).ljust(4096, b'\0')


def ovirt_parses(host_id, data):
    """oVirt's parse rules for a host slot, re-implemented from the format facts.
    Returns the parsed dict or raises AssertionError saying which rule refused it."""
    pdata = data[:512].rstrip(b'\0').decode()
    parse_version = int(re.match(r'\d+', pdata).group())
    assert parse_version <= 1, 'metadata too new'
    tokens = pdata.split('|')
    assert len(tokens) >= 7, 'too few tokens'
    assert int(tokens[1]) >= 1, 'metadata too old'
    out = {'host-id': int(tokens[3]), 'host-ts': int(tokens[2]), 'score': int(tokens[4]),
           'engine-status': tokens[5], 'hostname': tokens[6]}
    if len(tokens) >= 8:
        out['maintenance'] = int(tokens[7]) > 0
    if len(tokens) >= 9:
        out['stopped'] = int(tokens[8]) > 0
    if len(tokens) >= 10:
        given = tokens[9]
        tokens[9] = '00000000'
        crc = '%08x' % (binascii.crc32('|'.join(tokens).encode()) & 0xffffffff)
        assert crc == given, 'provided checksum %s does not match the data (%s)' % (given, crc)
    if len(tokens) >= 11:
        out['conf_on_shared_storage'] = int(tokens[10]) > 0
    if len(tokens) >= 12:
        out['local_conf_timestamp'] = int(tokens[11])
    assert out['host-id'] == host_id, 'host id mismatch'
    out['extra'] = data[512:].rstrip(b'\0').decode()
    return out


def ovirt_parses_global(data):
    """oVirt's global block parser: every '\\n' token must split into key=value."""
    out = {}
    for token in data[:4096].rstrip(b'\0').decode().split('\n'):
        k, v = token.split('=')      # ValueError on an empty token, as in oVirt
        assert k == 'maintenance', 'Invalid global metadata key: %r' % token
        out[k] = v in ('1', 'True', 'true')
    return out


def test_ovirt_written_slot_is_parsed():
    data = ovirt_slot(2, 5127, local_conf_timestamp=5090)
    rec = md.parse_host_slot(2, data)
    assert isinstance(rec, md.HostRecord), rec
    assert (rec.host_id, rec.timestamp, rec.score, rec.hostname) == \
        (2, 5127, 3400, 'ovirt-host2.example')
    assert rec.engine_status == {'vm': 'up', 'health': 'good', 'detail': 'Up', 'reason': ''}
    assert rec.conf_on_shared_storage and rec.local_conf_timestamp == 5090
    assert not rec.local_maintenance and not rec.stopped
    assert rec.state == 'EngineUp' and rec.extra['vm_conf_refresh_time'].startswith('5090 (')
    flags = md.parse_host_slot(2, ovirt_slot(2, 1, maintenance=1, stopped=1,
                                             conf_on_shared_storage=0))
    assert flags.local_maintenance and flags.stopped and not flags.conf_on_shared_storage


@pytest.mark.parametrize('ntokens', [7, 8, 9, 10, 11])
def test_ovirt_older_agents_leave_tokens_out(ntokens):
    rec = md.parse_host_slot(4, ovirt_slot(4, 77, maintenance=1, ntokens=ntokens))
    assert isinstance(rec, md.HostRecord), rec
    assert rec.timestamp == 77 and rec.local_maintenance == (ntokens >= 8)
    assert (rec.crc32 == '') == (ntokens < 10)
    assert rec.local_conf_timestamp == 0


def test_ovirt_version_rules():
    too_old = md.parse_host_slot(1, ovirt_slot(1, 5, feature_version=0))
    assert isinstance(too_old, md.Skipped) and too_old.reason == md.TOO_OLD
    too_new = md.parse_host_slot(1, ovirt_slot(1, 5, parse_version=2, feature_version=2))
    assert isinstance(too_new, md.Skipped) and too_new.reason == md.TOO_NEW
    # a newer agent of the same parse version (feature 2) stays readable
    assert isinstance(md.parse_host_slot(1, ovirt_slot(1, 5, feature_version=2)), md.HostRecord)


def test_ovirt_null_engine_status_reads_as_unknown():
    """An oVirt agent whose broker had no engine health yet writes json.dumps(None)."""
    data = ovirt_slot(3, 9, status_text='null')
    ovirt_parses(3, data)
    rec = md.parse_host_slot(3, data)
    assert isinstance(rec, md.HostRecord), rec
    assert rec.engine_status['vm'] == 'unknown'


def test_ovirt_crc_mismatch_is_skipped():
    data = ovirt_slot(2, 5127).replace(b'|3400|', b'|3401|', 1)
    assert md.parse_host_slot(2, data).reason == md.CRC


@pytest.mark.parametrize('kw', [
    {}, {'local_maintenance': True, 'stopped': True, 'conf_on_shared_storage': False},
    {'timeout': 'Thu Dec  3 09:00:00 2026'}])
def test_our_slot_passes_ovirt_rules(kw):
    status = {'vm': 'down', 'health': 'bad', 'detail': 'Down', 'reason': 'a|b'}
    data = md.serialize_host(5, 4242, 2400, status, 'host5.example', state='EngineDown',
                             local_conf_timestamp=17, **kw)
    got = ovirt_parses(5, data)
    assert (got['host-id'], got['host-ts'], got['score'], got['hostname']) == \
        (5, 4242, 2400, 'host5.example')
    assert json.loads(got['engine-status']) == status
    assert got['maintenance'] == kw.get('local_maintenance', False)
    assert got['stopped'] == kw.get('stopped', False)
    assert got['conf_on_shared_storage'] == kw.get('conf_on_shared_storage', True)
    assert got['local_conf_timestamp'] == 17
    assert 'state=EngineDown\n' in got['extra']
    with pytest.raises(AssertionError, match='host id mismatch'):
        ovirt_parses(6, data)


def test_our_global_block_passes_ovirt_rules():
    assert ovirt_parses_global(md.serialize_global(True)) == {'maintenance': True}
    assert ovirt_parses_global(md.serialize_global(False)) == {'maintenance': False}
    # what this project wrote before: oVirt's parser fails on the empty last token
    with pytest.raises(ValueError):
        ovirt_parses_global(b'maintenance=1\n'.ljust(4096, b'\0'))


def test_mixed_area_of_ovirt_and_our_slots():
    slots = [b'maintenance=0'.ljust(4096, b'\0'), slot(1, ts=100), ovirt_slot(2, 5127),
             ovirt_slot(3, 12, ntokens=9), b'junk'.ljust(4096, b'\0'), bytes(4096),
             ovirt_slot(6, 1, feature_version=0)]
    view = md.parse_slots(slots, 6)
    assert sorted(view.hosts) == [1, 2, 3]
    assert view.hosts[2].hostname == 'ovirt-host2.example'
    assert [(s.slot, s.reason) for s in view.skipped] == [(4, md.GARBAGE), (6, md.TOO_OLD)]
    # and every slot we accept from either writer is accepted by oVirt's rules
    for hid in (1, 2, 3):
        ovirt_parses(hid, slots[hid])


def test_a_long_reason_is_cut_to_fit_the_header():
    """A VM's exit message as the reason would overflow the 512-byte header: it is cut
    (ending in ...), so that the host keeps publishing its state, and the slot parses."""
    status = {'vm': 'down_unexpected', 'health': 'bad', 'detail': 'Down',
              'reason': 'the VM failed to start: ' + 'qemu|\u00e9 ' * 200}
    data = md.serialize_host(2, 100, 3400, status, 'host2.lab.test', state='EngineStarting')
    rec = md.parse_host_slot(2, data)
    assert rec.engine_status['vm'] == 'down_unexpected'
    reason = rec.engine_status['reason']
    assert reason.startswith('the VM failed to start: qemu|\u00e9') and reason.endswith('...')
    assert len(data[:md.HEADER_SIZE].rstrip(b'\0')) <= md.HEADER_SIZE
    # a status that fits is kept as it is
    short = dict(status, reason='Admin shut down from the engine')
    assert md.parse_host_slot(2, md.serialize_host(2, 1, 0, short, 'h')).engine_status == short
