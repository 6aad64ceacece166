"""VM.getStats' cpuUser/cpuSys come from two samples at least half a sampling interval
apart: a sample close after another (the VM's start, then the sampler's tick) never makes
an interval too short to measure, which read as a busy guest using no CPU."""
import threading

from ovirt_hosted_engine_setup.hostd import vm as vmmod


class Dom:
    def __init__(self):
        self.cpu = 0

    def isActive(self):
        return True

    def getCPUStats(self, total):
        return [{'cpu_time': self.cpu, 'user_time': 0, 'system_time': 0}]


def backend(interval=10.0):
    b = object.__new__(vmmod.VMBackend)
    b._lock = threading.RLock()
    b._cpu_samples = {}
    b.sample_interval = interval
    return b


def sample(b, dom, at, cpu, monkeypatch):
    dom.cpu = cpu
    monkeypatch.setattr(vmmod.time, 'monotonic', lambda: at)
    b._sample_cpu('vm', dom)


def test_a_sample_close_after_the_first_does_not_make_an_interval(monkeypatch):
    b, dom = backend(), Dom()
    sample(b, dom, 100.0, 1000, monkeypatch)
    sample(b, dom, 100.01, 1000, monkeypatch)      # the sampler's tick right after the start
    assert b._cpu_stats('vm') == {'cpuUser': '0.00', 'cpuSys': '0.00', 'cpuUsage': '0.00'}
    sample(b, dom, 110.0, 1000 + 5 * 10 ** 9, monkeypatch)
    st = b._cpu_stats('vm')
    assert st['cpuUser'] == '50.00' and st['cpuUsage'] == str(1000 + 5 * 10 ** 9)


def test_a_close_sample_after_a_pair_moves_the_newer_end(monkeypatch):
    b, dom = backend(), Dom()
    sample(b, dom, 100.0, 0, monkeypatch)
    sample(b, dom, 110.0, 10 ** 9, monkeypatch)
    sample(b, dom, 111.0, 2 * 10 ** 9, monkeypatch)
    st = b._cpu_stats('vm')
    # the pair is (100, 111): 2 s of CPU over 11 s
    assert st['cpuUser'] == '%.2f' % (100.0 * 2 / 11) and st['cpuUsage'] == str(2 * 10 ** 9)
    sample(b, dom, 121.0, 3 * 10 ** 9, monkeypatch)
    assert b._cpu_stats('vm')['cpuUser'] == '10.00'     # (111, 121): 1 s over 10 s
