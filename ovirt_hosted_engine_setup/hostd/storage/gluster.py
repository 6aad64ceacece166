"""Gluster volumes: GlusterVolume.list, as VDSM serves it, and what a GLUSTERFS connection
takes from it (the servers of the volume's bricks, its backup volfile servers).

VDSM runs the gluster CLI (``gluster --mode=script volume info [VOLUME]
[--remote-host=SERVER] --xml``) and answers {volumes: {name: info}}, info as VDSM builds it
from the XML: volumeName, uuid, volumeType (REPLICATE, DISTRIBUTE, DISTRIBUTED_REPLICATE,
DISPERSE ...), volumeStatus (ONLINE when started, else OFFLINE), brickCount, distCount,
replicaCount, disperseCount, redundancyCount (strings, as the CLI prints them), isArbiter,
transportType ([TCP], [RDMA] or both), bricks (["server:/path"]), bricksInfo ([{name,
hostUuid, isArbiter}]) and options ({name: value}). Its errors are VDSM's gluster errors:
GlusterCmdExecFailedException (the CLI could not run or failed: no glusterd reached),
GlusterXmlErrorException (output that is not the CLI's XML) and
GlusterVolumesListFailedException (the CLI's own error, such as a volume that does not
exist).
"""
import logging
import subprocess
import xml.etree.ElementTree as etree

from ..api_base import VdsmError, verb

log = logging.getLogger(__name__)

GLUSTER = 'gluster'
# seconds the CLI may take to answer (by itself it waits up to 120 s for a glusterd that does
# not answer): a GLUSTERFS connection may ask two glusterds before it mounts, within the 60 s
# a client gives connectStorageServer
CLI_TIMEOUT = 20
TRANSPORTS = {'0': ['TCP'], '1': ['RDMA']}


def _one_line(text):
    return ' '.join(str(text or '').split())


def volume_info_command(volume=None, server=None):
    cmd = [GLUSTER, '--mode=script', 'volume', 'info']
    if volume:
        cmd.append(volume)
    if server:
        cmd.append('--remote-host=%s' % server)
    return cmd + ['--xml']


def _text(el, tag, default=None):
    found = el.find(tag)
    if found is None or found.text is None:
        return default
    return found.text.strip()


def parse_volume_info(output, what='gluster volume info'):
    """{volume name: info} of the CLI's XML output (see the module); VdsmError
    GlusterXmlErrorException when it is not that XML, GlusterVolumesListFailedException when
    the CLI reports an error (opRet not 0)."""
    try:
        tree = etree.fromstring(output)
        ret = int(_text(tree, 'opRet'))
        errno = int(_text(tree, 'opErrno', '0'))
    except (etree.ParseError, TypeError, ValueError):
        raise VdsmError('GlusterXmlErrorException', '%s did not answer with its XML: %s'
                        % (what, _one_line(output)[:200] or 'no output'))
    if ret != 0:
        raise VdsmError('GlusterVolumesListFailedException', '%s failed: %s (gluster error %d)'
                        % (what, _text(tree, 'opErrstr') or 'no reason given', errno or ret))
    volumes = {}
    try:
        for el in tree.findall('volInfo/volumes/volume'):
            info = {
                'volumeName': _text(el, 'name'),
                'uuid': _text(el, 'id'),
                'volumeType': _text(el, 'typeStr', '').upper().replace('-', '_'),
                'volumeStatus': ('ONLINE' if _text(el, 'statusStr', '').upper() == 'STARTED'
                                 else 'OFFLINE'),
                'isArbiter': _text(el, 'arbiterCount') == '1',
                'transportType': TRANSPORTS.get(_text(el, 'transport'), ['TCP', 'RDMA']),
                'bricks': [], 'bricksInfo': [], 'options': {},
            }
            for key in ('brickCount', 'distCount', 'stripeCount', 'replicaCount',
                        'disperseCount', 'redundancyCount'):
                value = _text(el, key)
                if value is not None:
                    info[key] = value
            for brick in el.findall('bricks/brick'):
                info['bricks'].append((brick.text or '').strip())
                if brick.find('name') is not None:
                    info['bricksInfo'].append({'name': _text(brick, 'name'),
                                               'hostUuid': _text(brick, 'hostUuid'),
                                               'isArbiter': _text(brick, 'isArbiter') == '1'})
            for option in el.findall('options/option'):
                info['options'][_text(option, 'name')] = _text(option, 'value', '')
            if not info['volumeName'] or 'replicaCount' not in info:
                raise ValueError('a volume without name or replicaCount')
            volumes[info['volumeName']] = info
    except ValueError as e:
        raise VdsmError('GlusterXmlErrorException', '%s answered XML this host agent cannot '
                        'read (%s): %s' % (what, e, _one_line(output)[:200]))
    return volumes


def volume_info(volume=None, server=None, timeout=CLI_TIMEOUT):
    """{volume name: info} of one volume (or all) of the gluster server (or of the local
    glusterd), through the gluster CLI. VdsmError as the module says."""
    cmd = volume_info_command(volume, server)
    what = ' '.join(cmd[2:-1])
    log.debug('running %s', ' '.join(cmd))
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, timeout=timeout)
    except FileNotFoundError:
        raise VdsmError('GlusterCmdExecFailedException',
                        'the gluster command is not installed on this host: install the '
                        'gluster CLI (package glusterfs-cli)')
    except subprocess.TimeoutExpired:
        raise VdsmError('GlusterCmdExecFailedException',
                        'gluster %s gave no answer within %d s: check that glusterd runs on %s '
                        'and that this host reaches it' % (what, timeout,
                                                          server or 'this host'))
    if p.returncode != 0:
        raise VdsmError('GlusterCmdExecFailedException', 'gluster %s failed (exit %d): %s'
                        % (what, p.returncode,
                           _one_line(p.stderr or p.stdout) or 'no output'))
    return parse_volume_info(p.stdout, 'gluster ' + what)


def brick_servers(info):
    """The servers of a volume's bricks, in brick order, each once."""
    out = []
    for brick in info.get('bricks') or ():
        server = brick.rsplit(':', 1)[0] if ':' in brick else brick
        if server and server not in out:
            out.append(server)
    return out


def backup_volfile_servers(info, server):
    """The mount option VDSM adds to a gluster mount: the other servers of the volume's bricks
    ("backup-volfile-servers=s2:s3"), or '' when the volume has no other server."""
    others = [s for s in brick_servers(info) if s != server]
    if others and server not in brick_servers(info):
        log.warning('gluster server %s is not a server of the volume\'s bricks %s',
                    server, ', '.join(others))
    return 'backup-volfile-servers=' + ':'.join(others) if others else ''


class GlusterVolumes:
    """GlusterVolume.list: the gluster volumes a gluster server (or this host) knows."""

    def __init__(self, sc):
        self.sc = sc

    @verb('GlusterVolume.list')
    def volumesList(self, volumeName=None, remoteServer=None):
        return {'volumes': volume_info(volumeName, remoteServer)}
