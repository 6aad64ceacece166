"""The engine's certificates, made with the openssl command line.

Layout under <state-dir>/pki/ (the names follow /etc/pki/ovirt-engine/):
  ca.pem, private/ca.pem             the engine CA (certificate, key)
  certs/apache.cer, keys/apache.key.nopass
                                     the HTTPS server certificate (CN = engine FQDN)
  certs/engine.cer, keys/engine.key.nopass
                                     the engine's client certificate, presented to host agents
"""
import hashlib
import ipaddress
import os
import secrets
import ssl
import subprocess
import tempfile

CA_DAYS = 3650
CERT_DAYS = 398


class PkiError(Exception):
    pass


class EnginePki:
    def __init__(self, state_dir):
        self.dir = os.path.join(state_dir, 'pki')
        self.ca_cert = os.path.join(self.dir, 'ca.pem')
        self.ca_key = os.path.join(self.dir, 'private', 'ca.pem')
        self.server_cert = os.path.join(self.dir, 'certs', 'apache.cer')
        self.server_key = os.path.join(self.dir, 'keys', 'apache.key.nopass')
        self.client_cert = os.path.join(self.dir, 'certs', 'engine.cer')
        self.client_key = os.path.join(self.dir, 'keys', 'engine.key.nopass')

    def ready(self):
        return all(os.path.isfile(p) for p in (self.ca_cert, self.ca_key, self.server_cert,
                                               self.server_key, self.client_cert,
                                               self.client_key))

    def ca_pem(self):
        with open(self.ca_cert, encoding='ascii') as f:
            return f.read()

    def create(self, fqdn, organization, san=()):
        """Create the CA, the server and the client certificate (replacing any)."""
        for sub in ('private', 'certs', 'keys'):
            os.makedirs(os.path.join(self.dir, sub), mode=0o700, exist_ok=True)
        ca_cn = '%s.%d' % (fqdn, secrets.randbelow(90000) + 10000)
        _openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256',
                 '-keyout', self.ca_key, '-out', self.ca_cert, '-days', str(CA_DAYS),
                 '-subj', _subject(organization, ca_cn),
                 '-addext', 'basicConstraints=critical,CA:TRUE',
                 '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
                 '-addext', 'subjectKeyIdentifier=hash')
        os.chmod(self.ca_key, 0o600)
        os.chmod(self.ca_cert, 0o644)
        self.renew(fqdn, organization, san)

    def renew(self, fqdn, organization, san=()):
        """New server and client certificates (and keys) from the existing CA."""
        for sub in ('certs', 'keys'):
            os.makedirs(os.path.join(self.dir, sub), mode=0o700, exist_ok=True)
        names = list(dict.fromkeys([fqdn] + list(san)))
        alt = ','.join(('IP:%s' if _is_ip(n) else 'DNS:%s') % n for n in names)
        self._issue(self.server_cert, self.server_key, organization, fqdn,
                    ['basicConstraints=CA:FALSE',
                     'keyUsage=critical,digitalSignature,keyEncipherment',
                     'extendedKeyUsage=serverAuth', 'subjectAltName=%s' % alt])
        self._issue(self.client_cert, self.client_key, organization, fqdn,
                    ['basicConstraints=CA:FALSE',
                     'keyUsage=critical,digitalSignature,keyEncipherment',
                     'extendedKeyUsage=clientAuth'])
        for p in (self.server_key, self.client_key):
            os.chmod(p, 0o600)
        for p in (self.server_cert, self.client_cert):
            os.chmod(p, 0o644)

    def _issue(self, cert, key, organization, cn, extensions):
        with tempfile.TemporaryDirectory(prefix='engine-pki-') as tmp:
            csr = os.path.join(tmp, 'req.csr')
            ext = os.path.join(tmp, 'ext.cnf')
            with open(ext, 'w', encoding='ascii') as f:
                f.write('\n'.join(extensions) + '\n')
            _openssl('req', '-new', '-newkey', 'rsa:2048', '-nodes', '-keyout', key + '.tmp',
                     '-out', csr, '-subj', _subject(organization, cn))
            _openssl('x509', '-req', '-in', csr, '-CA', self.ca_cert, '-CAkey', self.ca_key,
                     '-set_serial', str(secrets.randbits(63)), '-days', str(CERT_DAYS),
                     '-sha256', '-extfile', ext, '-out', cert + '.tmp')
        os.rename(key + '.tmp', key)
        os.rename(cert + '.tmp', cert)

    def server_context(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(self.server_cert, self.server_key)
        return ctx


def _subject(organization, cn):
    def esc(v):
        return v.replace('\\', '\\\\').replace('/', '\\/').replace('=', '\\=')
    return '/C=US/O=%s/CN=%s' % (esc(organization), esc(cn))


def _is_ip(name):
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


def _openssl(*args):
    try:
        r = subprocess.run(['openssl'] + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise PkiError('the openssl command is missing: install the openssl package')
    if r.returncode != 0:
        raise PkiError('openssl %s failed: %s' % (args[0], (r.stderr or r.stdout).strip()[-500:]))
    return r.stdout


def pem_fingerprint(pem):
    """SHA-256 fingerprint (AA:BB:...) of a PEM certificate."""
    return der_fingerprint(ssl.PEM_cert_to_DER_cert(pem))


def der_fingerprint(der):
    digest = hashlib.sha256(der).hexdigest().upper()
    return ':'.join(digest[i:i + 2] for i in range(0, len(digest), 2))


def certificate_subject(pem):
    """The subject of a PEM certificate as oVirt prints it ("O=...,CN=...")."""
    out = _openssl_input(pem, 'x509', '-noout', '-subject', '-nameopt', 'RFC2253')
    return out.strip().split('=', 1)[1].strip() if '=' in out else out.strip()


def _openssl_input(data, *args):
    try:
        r = subprocess.run(['openssl'] + list(args), input=data, capture_output=True,
                           text=True, timeout=60)
    except FileNotFoundError:
        raise PkiError('the openssl command is missing: install the openssl package')
    if r.returncode != 0:
        raise PkiError('openssl %s failed: %s' % (args[0], r.stderr.strip()[-500:]))
    return r.stdout
