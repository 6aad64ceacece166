"""The VM lease's owner as the agents see it: a lease whose owner's host id was acquired
again since (the host crashed or hung and rejoined) is free, as sanlock treats it."""
from ovirt_hosted_engine_setup.ha.broker.lockspace import lease_owner
from ovirt_hosted_engine_setup.he_storage.delta_leases import DeltaLease
from ovirt_hosted_engine_setup.he_storage.layout import domain_ids_path


def delta(**gens):
    return {int(k[1:]): DeltaLease(int(k[1:]), 100, g, 'host%s' % k[1:], 10)
            for k, g in gens.items()}


def test_owner_with_its_current_generation_owns_the_lease():
    assert lease_owner([{'host_id': 3, 'generation': 5}], delta(h3=5, h1=2)) == 3


def test_owner_that_rejoined_since_does_not():
    # host 3 held the lease at generation 4, crashed, and joined again (generation 5)
    assert lease_owner([{'host_id': 3, 'generation': 4}], delta(h3=5)) is None


def test_unknown_lockspace_or_generation_believes_the_owner():
    assert lease_owner([{'host_id': 3, 'generation': 4}], None) == 3
    assert lease_owner([{'host_id': 3}], delta(h3=5)) == 3
    assert lease_owner([{'host_id': 3, 'generation': 4}], delta(h1=1)) == 3
    assert lease_owner([], delta(h3=5)) is None


def test_the_domain_lockspace_of_a_volume_lease():
    lease = '/rhev/data-center/mnt/srv:_he/SD/images/IMG/VOL.lease'
    assert domain_ids_path(lease) == '/rhev/data-center/mnt/srv:_he/SD/dom_md/ids'


def test_the_lockspace_of_a_lease_reached_through_the_image_link(tmp_path):
    """The host agent gives the lease under its run directory (RUN/SD/IMAGE is a link to
    the image directory of the domain): the lockspace is the domain's dom_md/ids, not a
    path computed from the link."""
    from ovirt_hosted_engine_setup.ha.broker.lockspace import lease_lockspace_path
    dom = tmp_path / 'mnt' / 'server:_export' / 'SD'
    (dom / 'dom_md').mkdir(parents=True)
    (dom / 'images' / 'IMG').mkdir(parents=True)
    (dom / 'images' / 'IMG' / 'VOL.lease').write_bytes(b'')
    run = tmp_path / 'run' / 'storage' / 'SD'
    run.mkdir(parents=True)
    (run / 'IMG').symlink_to(dom / 'images' / 'IMG')
    assert lease_lockspace_path(str(run / 'IMG' / 'VOL.lease')) == str(dom / 'dom_md' / 'ids')
    assert lease_lockspace_path(str(dom / 'images' / 'IMG' / 'VOL.lease')) == \
        str(dom / 'dom_md' / 'ids')
