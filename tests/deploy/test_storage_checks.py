"""The storage answer checks of the deploy (ovirt_hosted_engine_setup.deploy.storage_checks)."""
import os

import pytest

from ovirt_hosted_engine_setup.deploy import storage_checks as sc
from ovirt_hosted_engine_setup.he_storage import layout

GiB = 1 << 30
MiB = 1 << 20


@pytest.mark.parametrize('value, expected', [
    ('nfs', 'nfs'), ('NFS', 'nfs'), (' glusterfs ', 'glusterfs'), ('localfs', 'localfs'),
    ('posixfs', 'posixfs'), ('nfs3', 'nfs3'), ('nfs4', 'nfs4')])
def test_domain_type_accepted(value, expected):
    assert sc.domain_type(value) == expected


@pytest.mark.parametrize('value, words', [
    ('iscsi', 'iSCSI storage is block storage'), ('FC', 'Fibre Channel storage is block'),
])
def test_block_storage_refused_with_the_reason(value, words):
    with pytest.raises(ValueError) as e:
        sc.domain_type(value)
    assert words in str(e.value)
    assert 'use one of %s' % ', '.join(sc.SUPPORTED_TYPES) in str(e.value)
    assert '\n' not in str(e.value)


def test_unknown_type_lists_the_types():
    with pytest.raises(ValueError, match='use one of nfs, glusterfs, posixfs, localfs'):
        sc.domain_type('cifs')


def test_every_supported_type_is_a_host_agent_type():
    for t in sc.SUPPORTED_TYPES + sc.LEGACY_NFS_TYPES:
        assert t in layout.DOMAIN_TYPES


@pytest.mark.parametrize('dtype, value, expected', [
    ('nfs', 'nfs.example.com:/exports/he', 'nfs.example.com:/exports/he'),
    ('nfs', 'nfs.example.com:/exports/he/', 'nfs.example.com:/exports/he'),
    ('glusterfs', '192.0.2.5:/he-volume', '192.0.2.5:/he-volume'),
    ('nfs4', '[2001:db8::5]:/he', '[2001:db8::5]:/he'),
    ('localfs', '/srv/he/', '/srv/he'),
    ('posixfs', '/srv//he', '/srv/he'),
])
def test_connection_accepted_and_normalised(dtype, value, expected):
    assert sc.connection(dtype, value) == expected


@pytest.mark.parametrize('dtype, value, words', [
    ('nfs', 'nfs.example.com:/', 'is the root of the server'),
    ('nfs', 'nfs.example.com:///', 'is the root of the server'),
    ('nfs', 'nfs.example.com', 'is not host:/path'),
    ('nfs', 'nfs.example.com:exports', 'is not absolute'),
    ('nfs', 'bad host!:/x', 'the server in'),
    ('nfs', ':/x', 'the server in'),
    ('glusterfs', '/srv/he', 'is a local path'),
    ('localfs', 'nfs.example.com:/x', 'is not an absolute directory'),
    ('localfs', 'relative/dir', 'is not an absolute directory'),
    ('posixfs', '/', 'cannot be the storage'),
    ('nfs', '', 'is empty'),
])
def test_connection_refused(dtype, value, words):
    with pytest.raises(ValueError) as e:
        sc.connection(dtype, value)
    text = str(e.value)
    assert words in text
    assert '\n' not in text
    assert 'give' in text          # names the fix


@pytest.mark.parametrize('dtype, version, options, expected', [
    ('nfs', 'auto', '', ''),
    ('nfs', None, 'soft', 'soft'),
    ('nfs', 'v3', '', 'nfsvers=3'),
    ('nfs', 'v4', 'noatime', 'noatime,vers=4'),
    ('nfs', 'v4_1', '', 'vers=4.1'),
    ('nfs', 'v4_2', ' a , b ', 'a,b,vers=4.2'),
    ('glusterfs', 'v4_1', 'backup-volfile-servers=g2:g3', 'backup-volfile-servers=g2:g3'),
    ('nfs4', 'v3', '', ''),          # the legacy type carries its version itself
])
def test_mount_options(dtype, version, options, expected):
    assert sc.mount_options(dtype, version, options) == expected


def test_mount_options_refuse_two_versions():
    with pytest.raises(ValueError, match='already set an NFS version'):
        sc.mount_options('nfs', 'v4_1', 'vers=3')


def test_needed_bytes_counts_the_three_small_volumes():
    assert sc.needed_bytes(25) == 25 * GiB + 3 * MiB
    assert sc.needed_bytes('1') == GiB + 3 * MiB


def test_space_enough():
    sc.check_space('localfs', '/srv/he', 25 * GiB + 3 * MiB, 25)
    sc.check_space('nfs', 'n:/x', 30 * GiB, 25)


def test_space_short_of_the_disk_names_free_and_needed():
    with pytest.raises(ValueError) as e:
        sc.check_space('localfs', '/srv/he', 64 * MiB, 1)
    text = str(e.value)
    assert '/srv/he has 64.0 MiB free' in text
    assert 'less than the 1.0 GiB needed for a 1 GB VM disk' in text
    assert '\n' not in text


def test_space_just_short_by_the_small_volumes():
    with pytest.raises(ValueError, match='needed for a 25 GB VM disk'):
        sc.check_space('localfs', '/srv/he', 25 * GiB + 2 * MiB, 25)


def test_shared_storage_needs_20_gib_even_for_a_small_disk():
    with pytest.raises(ValueError) as e:
        sc.check_space('glusterfs', 'g:/he', 19 * GiB, 5)
    assert 'has 19.0 GiB free, less than the 20.0 GiB' in str(e.value)
    sc.check_space('localfs', '/srv/he', 6 * GiB, 5)     # no floor for a local directory


def test_free_bytes_and_probe(tmp_path):
    assert sc.free_bytes(str(tmp_path)) > 0
    assert sc.probe_writable(str(tmp_path)) is None
    assert os.listdir(str(tmp_path)) == []                   # the probe is removed
    missing = str(tmp_path / 'missing')
    assert 'is not writable' in sc.probe_writable(missing)


def test_find_domains(tmp_path):
    sd = '0b0c6f4c-5b1d-4a5f-9a57-0a3c2f6d7e01'
    (tmp_path / sd / 'dom_md').mkdir(parents=True)
    (tmp_path / sd / 'dom_md' / 'metadata').write_text(
        'CLASS=Data\nDESCRIPTION=hosted_storage\nVERSION=5\n_SHA_CKSUM=00\n')
    other = '1b0c6f4c-5b1d-4a5f-9a57-0a3c2f6d7e02'
    (tmp_path / other / 'dom_md').mkdir(parents=True)       # no metadata: not a domain
    (tmp_path / 'lost+found').mkdir()
    (tmp_path / 'notes.txt').write_text('x')
    assert sc.find_domains(str(tmp_path)) == [(sd, 'hosted_storage')]
    assert sc.find_domains(str(tmp_path / 'missing')) == []


def test_preset_uuid():
    assert sc.preset_uuid(None) is None
    assert sc.preset_uuid('') is None
    assert sc.preset_uuid(layout.BLANK_UUID) is None
    u = '0b0c6f4c-5b1d-4a5f-9a57-0a3c2f6d7e01'
    assert sc.preset_uuid(u) == u
