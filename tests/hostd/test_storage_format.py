"""StorageDomain.format refuses a domain in use, as VDSM does: while another host holds
a live host id in the domain's sanlock lockspace, while this host monitors it, while a
pool connected here holds it. Real sanlock daemons: this test process's (host id 1) and
a second one that joins the lockspace with host id 2, as another host would."""
import os
import subprocess
import time

import pytest

from ovirt_hosted_engine_setup.he_storage import sanlock_util
from ovirt_hosted_engine_setup.hostd.api_base import VdsmError
from ovirt_hosted_engine_setup.hostd.storage import StorageBackend

from .conftest import IO_TIMEOUT, make_ctx
from .daemons import SanlockDaemon
from .storage_helpers import BLANK, LOCALFS, POOL_TIMINGS, new_uuid, wait_acquired


@pytest.fixture
def env(tmp_path, sanlock_daemon):
    storage = tmp_path / 'storage'
    storage.mkdir()
    ctx = make_ctx(str(tmp_path / 'host'), sanlock_daemon.run_dir)
    b = StorageBackend(ctx)
    b.recover()
    yield b, str(storage)
    for sd in list(b.monitored):
        b.stopMonitoringDomain(sdUUID=sd)
    for sp in list(b.pools):
        b.disconnectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp)
    b.close()


@pytest.fixture
def other_host(tmp_path):
    """A second host's sanlock daemon."""
    d = SanlockDaemon(str(tmp_path / 'other-sanlock'), 'other-host').start()
    yield d
    if d.proc and d.proc.poll() is None:
        d.stop()


def sanlock_client(daemon, *args):
    return subprocess.run(['sanlock', 'client'] + list(args), check=True,
                          env=dict(os.environ, SANLOCK_RUN_DIR=daemon.run_dir),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=120)


def make_domain(b, storage):
    sd = new_uuid()
    b.connectStorageServer(storagepoolID=BLANK, domainType=LOCALFS,
                           connectionParams=[{'id': new_uuid(), 'connection': storage}])
    b.createStorageDomain(storagedomainID=sd, domainType=LOCALFS, typeArgs=storage, name='d',
                          domainClass=1)
    return sd, os.path.join(storage, sd, 'dom_md', 'ids')


def refused(b, sd, auto_detach=True):
    with pytest.raises(VdsmError) as e:
        b.formatStorageDomain(storagedomainID=sd, autoDetach=auto_detach)
    assert os.path.isdir(b.find_domain(sd))
    return e.value


def test_format_refused_while_another_host_id_is_live(env, other_host):
    b, storage = env
    sd, ids = make_domain(b, storage)
    lockspace = '%s:2:%s:0' % (sd, ids)
    sanlock_client(other_host, 'add_lockspace', '-o', str(IO_TIMEOUT), '-s', lockspace)
    assert sanlock_util.lockspace_timestamps(ids).keys() == {2}

    e = refused(b, sd)
    assert e.code == 382                        # VDSM's StorageDomainActive
    assert 'host id 2 holds a live lease' in e.message
    assert 'stop the HA services' in e.message and 'fence' in e.message

    # This host monitoring it, and a pool connected here holding it, also refuse.
    b.startMonitoringDomain(sdUUID=sd, hostID=1)
    wait_acquired(b, sd)
    e = refused(b, sd)
    assert e.code == 382 and 'this host monitors it' in e.message
    b.stopMonitoringDomain(sdUUID=sd)
    sp = new_uuid()
    b.createStoragePool(storagepoolID=sp, name='dc', masterSdUUID=sd, masterVersion=1,
                        domainList=[sd], **POOL_TIMINGS)
    assert refused(b, sd, auto_detach=False).code == 391      # attached, no autoDetach
    b.connectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp, masterSdUUID=sd,
                         masterVersion=1, domainDict={sd: 'active'})
    assert refused(b, sd).code == 392           # while host id 1 is still being acquired
    b.disconnectStoragePool(storagepoolID=sp, hostID=1, scsiKey=sp)
    assert refused(b, sd).code == 382           # host id 2 still there

    # The other host leaves the lockspace: the domain can go.
    sanlock_client(other_host, 'rem_lockspace', '-s', lockspace)
    t0 = time.monotonic()
    assert b.formatStorageDomain(storagedomainID=sd, autoDetach=True) is True
    assert time.monotonic() - t0 < 2 * IO_TIMEOUT      # no live lease: no waiting
    assert not os.path.exists(os.path.join(storage, sd))
    assert sd not in b.getStorageDomains()


def test_a_host_that_stopped_renewing_does_not_block(env, other_host):
    """A host that is gone (its sanlock killed, its timestamp left on the storage) no
    longer renews its lease: after one renewal interval it does not count as live."""
    b, storage = env
    sd, ids = make_domain(b, storage)
    sanlock_client(other_host, 'add_lockspace', '-o', str(IO_TIMEOUT), '-s',
                   '%s:2:%s:0' % (sd, ids))
    assert refused(b, sd).code == 382
    other_host.proc.kill()
    other_host.proc.wait()
    assert 2 in sanlock_util.lockspace_timestamps(ids)     # left behind, not cleared
    assert sanlock_util.live_host_ids(sd, ids) == []
    assert b.formatStorageDomain(storagedomainID=sd, autoDetach=True) is True
    assert not os.path.exists(os.path.join(storage, sd))
