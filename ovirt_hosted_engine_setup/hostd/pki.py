"""The host agent's certificates: a CA, a server and a client certificate.

Layout under <root>/pki/:
  cacert.pem, cakey.pem         the CA (kept if present, so a lab can share one CA)
  hostcert.pem, hostkey.pem     the agent's server certificate (TLS server side)
  clientcert.pem, clientkey.pem a client certificate local tools use
  trusted-cas/*.pem             more CAs whose client certificates the agent accepts
                                (the engine's CA, installed there by a deploy)

The agent requires client certificates signed by the CA or by a trusted CA.
"""
import datetime
import ipaddress
import os
import socket

DEFAULT_ROOT = '/var/lib/ovirt-hosted-engine-hostd'
VALID_DAYS = 3650


class PkiPaths:
    def __init__(self, root):
        self.dir = os.path.join(root, 'pki')
        self.ca_cert = os.path.join(self.dir, 'cacert.pem')
        self.ca_key = os.path.join(self.dir, 'cakey.pem')
        self.server_cert = os.path.join(self.dir, 'hostcert.pem')
        self.server_key = os.path.join(self.dir, 'hostkey.pem')
        self.client_cert = os.path.join(self.dir, 'clientcert.pem')
        self.client_key = os.path.join(self.dir, 'clientkey.pem')
        self.trusted_cas = os.path.join(self.dir, 'trusted-cas')

    def client_ready(self):
        return all(os.path.isfile(p) for p in (self.ca_cert, self.client_cert, self.client_key))


def paths(root=DEFAULT_ROOT):
    return PkiPaths(root)


def _write(path, data, mode):
    tmp = path + '.tmp'
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, 'wb') as f:
        f.write(data)
    os.chmod(tmp, mode)
    os.rename(tmp, path)


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec
    return ec.generate_private_key(ec.SECP256R1())


def _key_pem(key):
    from cryptography.hazmat.primitives import serialization
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _name(cn, org='ovirt-hosted-engine'):
    from cryptography import x509
    from cryptography.x509.oid import NameOID
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def create_ca(cert_path, key_path, cn=None):
    """Write a new self-signed CA to cert_path/key_path."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    key = _new_key()
    cn = cn or 'ovirt-hosted-engine-hostd CA %s' % socket.gethostname()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = _name(cn)
    cert = (x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                           critical=False)
            .sign(key, hashes.SHA256()))
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def issue_cert(ca_cert_path, ca_key_path, cert_path, key_path, cn, server=True, names=()):
    """Write a certificate for cn signed by the CA; server certs carry names as SANs."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID
    with open(ca_cert_path, 'rb') as f:
        ca_cert = x509.load_pem_x509_certificate(f.read())
    with open(ca_key_path, 'rb') as f:
        ca_key = serialization.load_pem_private_key(f.read(), password=None)
    key = _new_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(cn)).issuer_name(ca_cert.subject)
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1))
               .not_valid_after(now + datetime.timedelta(days=VALID_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
               .add_extension(x509.ExtendedKeyUsage(
                   [ExtendedKeyUsageOID.SERVER_AUTH if server
                    else ExtendedKeyUsageOID.CLIENT_AUTH]),
                   critical=False))
    if server:
        sans = []
        for n in dict.fromkeys([cn] + list(names)):
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    _write(key_path, _key_pem(key), 0o600)
    _write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def ensure_pki(root=DEFAULT_ROOT, hostname=None):
    """Create what is missing of <root>/pki (CA, server and client certificates).

    An existing cacert.pem + cakey.pem is kept and used to issue the others.
    Returns the PkiPaths.
    """
    p = PkiPaths(root)
    os.makedirs(p.dir, mode=0o700, exist_ok=True)
    hostname = hostname or socket.gethostname()
    have_ca = os.path.isfile(p.ca_cert) and os.path.isfile(p.ca_key)
    if not have_ca:
        if os.path.isfile(p.ca_cert):
            raise RuntimeError('%s exists without its key %s: add the key or remove the '
                               'certificate to create a new CA' % (p.ca_cert, p.ca_key))
        create_ca(p.ca_cert, p.ca_key)
    if not (os.path.isfile(p.server_cert) and os.path.isfile(p.server_key)) or not have_ca:
        issue_cert(p.ca_cert, p.ca_key, p.server_cert, p.server_key, hostname, server=True,
                   names=('localhost', '127.0.0.1', '::1'))
    if not (os.path.isfile(p.client_cert) and os.path.isfile(p.client_key)) or not have_ca:
        issue_cert(p.ca_cert, p.ca_key, p.client_cert, p.client_key,
                   'ovirt-hosted-engine client %s' % hostname, server=False)
    return p
