"""Mail notifications delivered to a real SMTP server (aiosmtpd) on 127.0.0.1."""
import datetime
import email
import email.policy
import email.utils
import ipaddress
import os
import logging
import socket
import ssl

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ovirt_hosted_engine_setup import paths
from ovirt_hosted_engine_setup.ha import notifications
from ovirt_hosted_engine_setup.ha.notifications import ConfigError, Notifier

PASSWORD = 'Sw0rdfish-\u00e9t\u00e9-42'
USER = 'hauser'
NOW = datetime.datetime(2024, 5, 6, 7, 8, 9, tzinfo=datetime.timezone.utc)
LOGGER = 'ovirt_hosted_engine_setup.ha.notifications'


# --- certificates -----------------------------------------------------------

def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _make_ca(cn):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False,
                                         key_encipherment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=True, crl_sign=True,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def _make_server_cert(ca_key, ca_cert):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(_name('smtp.test')).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.IPAddress(ipaddress.ip_address('127.0.0.1')), x509.DNSName('localhost')]),
                critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


def _pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


@pytest.fixture(scope='module')
def pki(tmp_path_factory):
    d = tmp_path_factory.mktemp('smtp-pki')
    ca_key, ca_cert = _make_ca('Notification test CA')
    key, cert = _make_server_cert(ca_key, ca_cert)
    _other_key, other_ca = _make_ca('Some other CA')
    (d / 'ca.pem').write_bytes(_pem(ca_cert))
    (d / 'other-ca.pem').write_bytes(_pem(other_ca))
    (d / 'server.pem').write_bytes(_pem(cert) + _pem(ca_cert))
    (d / 'server.key').write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(str(d / 'server.pem'), str(d / 'server.key'))
    return {'ca': str(d / 'ca.pem'), 'other_ca': str(d / 'other-ca.pem'), 'server_ctx': ctx}


# --- the SMTP server ----------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


class Sink:
    def __init__(self):
        self.envelopes = []

    async def handle_DATA(self, server, session, envelope):
        self.envelopes.append(envelope)
        return '250 OK queued'


class Authenticator:
    """Checks the login against USER/PASSWORD; remembers the mechanisms used."""

    def __init__(self, password=PASSWORD):
        self.password = password
        self.mechanisms = []
        self.failures = 0

    def __call__(self, server, session, envelope, mechanism, auth_data):
        self.mechanisms.append(mechanism)
        if (isinstance(auth_data, LoginPassword) and auth_data.login == USER.encode()
                and auth_data.password == self.password.encode()):
            return AuthResult(success=True)
        self.failures += 1
        return AuthResult(success=False, handled=False)


@pytest.fixture
def smtp_server():
    """start(**smtp_kwargs) -> (port, sink); every server started is stopped at the end."""
    started = []

    def start(**kwargs):
        sink = Sink()
        for _attempt in range(5):
            port = _free_port()
            controller = Controller(sink, hostname='127.0.0.1', port=port, **kwargs)
            try:
                controller.start()
            except (OSError, RuntimeError):
                continue
            started.append(controller)
            return port, sink
        raise RuntimeError('cannot start the SMTP test server')

    yield start
    for c in started:
        c.stop()


def _conf(port, notify='maintenance|start|stop|migrate|up|down', **email_keys):
    section = {'smtp-server': '127.0.0.1', 'smtp-port': str(port),
               'source-email': 'ha@host1.lab.test',
               'destination-emails': 'admin@lab.test, ops@lab.test', 'smtp-timeout': '5'}
    section.update(email_keys)
    return {'email': section, 'notify': {'state_transition': notify} if notify is not None else {}}


def _received(sink):
    assert len(sink.envelopes) == 1
    env = sink.envelopes[0]
    return env, email.message_from_bytes(env.content, policy=email.policy.default)


@pytest.fixture(autouse=True)
def no_admin_templates(tmp_path, monkeypatch):
    """The admin's template directory is empty unless a test writes one."""
    monkeypatch.setattr(paths, 'NOTIFICATIONS_DIR', str(tmp_path / 'etc-notifications'))


# --- delivery -----------------------------------------------------------------

def test_plain_delivery_with_packaged_template(smtp_server):
    port, sink = smtp_server()
    notifier = Notifier.from_config(_conf(port))
    sent, reason = notifier.notify('state_transition', 'EngineDown-EngineStart', 'host1.lab.test', now=NOW)
    assert sent, reason
    assert 'admin@lab.test' in reason
    env, msg = _received(sink)
    assert env.mail_from == 'ha@host1.lab.test'
    assert env.rcpt_tos == ['admin@lab.test', 'ops@lab.test']
    assert msg['From'] == 'ha@host1.lab.test'
    assert [a for _n, a in email.utils.getaddresses([msg['To']])] == ['admin@lab.test', 'ops@lab.test']
    assert msg['Subject'] == 'ovirt-hosted-engine state transition EngineDown-EngineStart'
    assert email.utils.parsedate_to_datetime(msg['Date']) == NOW
    assert msg['Message-ID']
    body = msg.get_content()
    assert 'host1.lab.test' in body
    assert 'EngineDown-EngineStart' in body
    assert '2024-05-06 07:08:09 UTC' in body
    assert 'state_transition' in body
    assert '{' not in body and '}' not in body


def test_every_placeholder_and_stray_braces(smtp_server, tmp_path):
    template = tmp_path / 'custom.txt'
    template.write_text(
        'From: HA <{source-email}>\n'
        'To: {destination-emails}\n'
        'Subject: [{type}] {hostname}: {detail} {unknown}\n'
        'Date: Tue, 01 Jan 2030 00:00:00 +0000\n'
        '\n'
        'src={source-email}\ndst={destination-emails}\ndetail={detail}\nhost={hostname}\n'
        'time={time}\ntype={type}\nkept={unknown} {0} {} {{detail}} { a } json={"k": 1}\n')
    port, sink = smtp_server()
    notifier = Notifier.from_config(_conf(port), template_path=str(template))
    sent, reason = notifier.notify('state_transition', 'EngineUp-LocalMaintenance', 'h2', now=NOW)
    assert sent, reason
    _env, msg = _received(sink)
    assert msg['Subject'] == '[state_transition] h2: EngineUp-LocalMaintenance {unknown}'
    assert msg['Date'] == 'Tue, 01 Jan 2030 00:00:00 +0000'   # the template's own Date is kept
    assert len(msg.get_all('Date')) == 1
    lines = msg.get_content().splitlines()
    assert lines[:6] == ['src=ha@host1.lab.test', 'dst=admin@lab.test, ops@lab.test',
                         'detail=EngineUp-LocalMaintenance', 'host=h2',
                         'time=2024-05-06 07:08:09 UTC', 'type=state_transition']
    assert lines[6] == 'kept={unknown} {0} {} {EngineUp-LocalMaintenance} { a } json={"k": 1}'


def test_admin_template_overrides_packaged(smtp_server):
    
    os.makedirs(paths.NOTIFICATIONS_DIR)
    with open(os.path.join(paths.NOTIFICATIONS_DIR, 'state_transition.txt'), 'w') as f:
        f.write('From: {source-email}\nTo: {destination-emails}\nSubject: site {detail}\n\nsite body {hostname}\n')
    port, sink = smtp_server()
    sent, reason = Notifier.from_config(_conf(port)).notify('state_transition', 'EngineUp-EngineStop', 'hx', now=NOW)
    assert sent, reason
    _env, msg = _received(sink)
    assert msg['Subject'] == 'site EngineUp-EngineStop'
    assert msg.get_content().rstrip() == 'site body hx'
    assert msg['Date']


def test_template_without_headers(smtp_server, tmp_path):
    template = tmp_path / 'bare.txt'
    template.write_text('The state machine changed state: {detail} on {hostname}.')
    port, sink = smtp_server()
    sent, reason = Notifier.from_config(_conf(port), template_path=str(template)).notify(
        'state_transition', 'EngineUp-EngineStop', 'h3', now=NOW)
    assert sent, reason
    _env, msg = _received(sink)
    assert msg['From'] == 'ha@host1.lab.test'
    assert msg['To'] == 'admin@lab.test, ops@lab.test'
    assert msg['Date'] and msg['Subject'] is None
    assert msg.get_content().rstrip() == 'The state machine changed state: EngineUp-EngineStop on h3.'


def test_non_ascii_text(smtp_server):
    port, sink = smtp_server()
    notifier = Notifier.from_config(_conf(port, notify='.'))
    sent, reason = notifier.notify('state_transition', 'EngineUp-\u00c9tatInconnu', 'h\u00f4te-1', now=NOW)
    assert sent, reason
    env, msg = _received(sink)
    assert env.content.isascii()        # encoded for servers without 8BITMIME
    assert msg['Subject'] == 'ovirt-hosted-engine state transition EngineUp-\u00c9tatInconnu'
    assert 'h\u00f4te-1' in msg.get_content()


def test_values_cannot_inject_headers(smtp_server):
    port, sink = smtp_server()
    notifier = Notifier.from_config(_conf(port, notify='.'))
    sent, reason = notifier.notify('state_transition', 'A-B\r\nBcc: victim@evil.test', 'h\nX-Evil: 1', now=NOW)
    assert sent, reason
    env, msg = _received(sink)
    assert msg['Bcc'] is None and msg['X-Evil'] is None
    assert env.rcpt_tos == ['admin@lab.test', 'ops@lab.test']


# --- the [notify] filter ------------------------------------------------------

@pytest.mark.parametrize('detail, wanted', [
    ('EngineUp-LocalMaintenance', True),
    ('EngineDown-EngineStart', True),
    ('ENGINEMIGRATINGAWAY-RECEIVEDSHUTDOWN', True),
    ('EngineUnexpectedlyDown-EngineDown', True),
    ('ReinitializeFSM-EngineDown', True),
    ('EngineForceStop-EngineDown', True),
    ('ReinitializeFSM-UnknownLocalVmState', False),
    ('EngineMaybeAway-ReinitializeFSM', False),
])
def test_regex_filter(smtp_server, detail, wanted):
    port, sink = smtp_server()
    notifier = Notifier.from_config(_conf(port, notify='Maintenance|START|stop|migrate|up|down'))
    sent, reason = notifier.notify('state_transition', detail, 'h1', now=NOW)
    assert sent is wanted, reason
    if not wanted:
        assert reason == 'filtered by [notify] state_transition'
        assert sink.envelopes == []
    else:
        assert len(sink.envelopes) == 1


def test_type_without_rule_is_off(smtp_server):
    port, sink = smtp_server()
    for notify in (None, '   '):
        sent, reason = Notifier.from_config(_conf(port, notify=notify)).notify(
            'state_transition', 'EngineUp-EngineDown', 'h1')
        assert not sent
        assert 'no [notify] state_transition' in reason
    assert sink.envelopes == []


# --- TLS and login ------------------------------------------------------------

@pytest.mark.parametrize('mechanism, password', [
    ('LOGIN', 'plain-ascii-Pass1'), ('PLAIN', 'plain-ascii-Pass1'),
    ('LOGIN', PASSWORD), ('PLAIN', PASSWORD)])
def test_starttls_and_login(smtp_server, pki, caplog, mechanism, password):
    caplog.set_level(logging.DEBUG)
    auth = Authenticator(password)
    others = [m for m in ('LOGIN', 'PLAIN') if m != mechanism]
    port, sink = smtp_server(tls_context=pki['server_ctx'], require_starttls=True,
                             authenticator=auth, auth_required=True, auth_require_tls=True,
                             auth_exclude_mechanism=others)
    notifier = Notifier.from_config(_conf(port, **{
        'smtp-starttls': 'True', 'smtp-cafile': pki['ca'],
        'smtp-user': USER, 'smtp-password': password}))
    sent, reason = notifier.notify('state_transition', 'EngineStart-EngineStarting', 'h1', now=NOW)
    assert sent, reason
    assert auth.mechanisms == [mechanism] and auth.failures == 0
    _env, msg = _received(sink)
    assert msg['Subject'] == 'ovirt-hosted-engine state transition EngineStart-EngineStarting'
    assert password not in repr(notifier.config)
    assert password not in caplog.text


def test_wrong_password(smtp_server, pki, caplog):
    caplog.set_level(logging.DEBUG)
    auth = Authenticator()
    port, sink = smtp_server(tls_context=pki['server_ctx'], require_starttls=True,
                             authenticator=auth, auth_required=True)
    wrong = 'n0t-the-Right-one-%d' % port
    notifier = Notifier.from_config(_conf(port, **{
        'smtp-starttls': 'yes', 'smtp-cafile': pki['ca'],
        'smtp-user': USER, 'smtp-password': wrong}), source='/etc/ovirt-hosted-engine-ha/broker.conf')
    sent, reason = notifier.notify('state_transition', 'EngineUp-EngineDown', 'h1', now=NOW)
    assert not sent
    assert '\n' not in reason
    assert 'refused the login' in reason and 'smtp-password' in reason and 'broker.conf' in reason
    assert wrong not in reason
    assert auth.failures >= 1 and sink.envelopes == []
    # the failure is logged (traceback at debug level), without the password in any form
    assert 'refused the login' in caplog.text
    ours = '\n'.join(r.getMessage() for r in caplog.records if r.name == LOGGER)
    assert 'Traceback' in ours
    for form in notifications._scrubber._secrets:
        assert form not in ours
    assert wrong not in caplog.text


def test_implicit_tls(smtp_server, pki):
    port, sink = smtp_server(ssl_context=pki['server_ctx'])
    notifier = Notifier.from_config(_conf(port, **{'smtp-ssl': 'True', 'smtp-cafile': pki['ca']}))
    sent, reason = notifier.notify('state_transition', 'EngineDown-EngineStart', 'h1', now=NOW)
    assert sent, reason
    _received(sink)


def test_untrusted_certificate(smtp_server, pki):
    port, sink = smtp_server(tls_context=pki['server_ctx'], require_starttls=True)
    notifier = Notifier.from_config(_conf(port, **{'smtp-starttls': 'True', 'smtp-cafile': pki['other_ca']}))
    sent, reason = notifier.notify('state_transition', 'EngineDown-EngineStart', 'h1', now=NOW)
    assert not sent
    assert 'cannot be verified' in reason and 'smtp-cafile' in reason and '\n' not in reason
    assert sink.envelopes == []


def test_starttls_not_offered(smtp_server, pki):
    port, sink = smtp_server()
    notifier = Notifier.from_config(_conf(port, **{'smtp-starttls': 'True', 'smtp-cafile': pki['ca']}))
    sent, reason = notifier.notify('state_transition', 'EngineDown-EngineStart', 'h1', now=NOW)
    assert not sent
    assert 'does not offer STARTTLS' in reason
    assert sink.envelopes == []


def test_connection_refused(caplog):
    port = _free_port()
    notifier = Notifier.from_config(_conf(port))
    sent, reason = notifier.notify('state_transition', 'EngineDown-EngineStart', 'h1', now=NOW)
    assert not sent
    assert reason.startswith('cannot connect to SMTP server 127.0.0.1:%d' % port)
    assert 'refused' in reason.lower() and '\n' not in reason
    assert any(r.levelno == logging.WARNING and 'not sent' in r.getMessage() for r in caplog.records)


# --- configuration ------------------------------------------------------------

def test_from_file_reads_broker_conf(tmp_path, smtp_server):
    port, sink = smtp_server()
    conf = tmp_path / 'broker.conf'
    conf.write_text('[email]\nsmtp-server=127.0.0.1\nsmtp-port=%d\nsmtp-timeout=5\n'
                    'destination-emails=root@localhost\nsource-email=root@localhost\n\n'
                    '[notify]\nstate_transition=maintenance|start|stop|up|down\n' % port)
    notifier = Notifier.from_file(str(conf))
    assert notifier.config.source == str(conf)
    assert notifier.config.starttls is False and notifier.config.user is None
    sent, reason = notifier.notify('state_transition', 'EngineDown-EngineStart', 'h1')
    assert sent, reason
    env, msg = _received(sink)
    assert env.rcpt_tos == ['root@localhost']
    date = email.utils.parsedate_to_datetime(msg['Date'])
    assert abs((datetime.datetime.now(datetime.timezone.utc) - date).total_seconds()) < 60


@pytest.mark.parametrize('text, needles', [
    ('smtp-server=localhost\n', ['not an INI file', 'no section headers']),
    ('[email]\ndestination-emails=a@b\nthis line is garbage\n', ['not an INI file', '[line 3]']),
    ('[email]\nsmtp-port=twenty-five\ndestination-emails=a@b\n', ['[email] smtp-port', 'twenty-five', '1 to 65535']),
    ('[email]\nsmtp-port=70000\ndestination-emails=a@b\n', ['[email] smtp-port']),
    ('[email]\nsmtp-server=localhost\n', ['[email] destination-emails', 'missing']),
    ('[email]\ndestination-emails= , \n', ['[email] destination-emails']),
    ('[email]\ndestination-emails=admin\n', ['[email] destination-emails', "'admin'"]),
    ('[email]\ndestination-emails=a@b\nsmtp-starttls=maybe\n', ['[email] smtp-starttls', 'True or False']),
    ('[email]\ndestination-emails=a@b\nsmtp-ssl=True\nsmtp-starttls=True\n', ['both set']),
    ('[email]\ndestination-emails=a@b\nsmtp-timeout=-1\n', ['[email] smtp-timeout']),
    ('[email]\ndestination-emails=a@b\nsmtp-cafile=/nonexistent/ca.pem\n', ['[email] smtp-cafile']),
    ('[email]\ndestination-emails=a@b\nsmtp-server=mail.example.com\nsmtp-user=u\nsmtp-password=SeKrit99\n',
     ['[email] smtp-user', 'smtp-starttls=True']),
    ('[email]\ndestination-emails=a@b\n[notify]\nstate_transition=up|(down\n',
     ['[notify] state_transition', 'regular expression']),
    ('[email]\ndestination-emails=a@b\n[email]\nsmtp-port=1\n', ['not an INI file']),
])
def test_bad_broker_conf(tmp_path, text, needles):
    conf = tmp_path / 'broker.conf'
    conf.write_text(text)
    with pytest.raises(ConfigError) as e:
        Notifier.from_file(str(conf))
    message = str(e.value)
    assert message.startswith(str(conf) + ': ')
    assert '\n' not in message
    for needle in needles:
        assert needle in message
    assert 'SeKrit99' not in message


def test_missing_files(tmp_path):
    with pytest.raises(ConfigError, match='broker.conf: not found'):
        Notifier.from_file(str(tmp_path / 'broker.conf'))
    with pytest.raises(ConfigError, match='nope.txt: notification template not found'):
        Notifier.from_config(_conf(25), template_path=str(tmp_path / 'nope.txt'))


def test_login_over_loopback_without_tls_is_allowed():
    notifier = Notifier.from_config(_conf(25, **{'smtp-user': 'u', 'smtp-password': 'p4ss-word'}))
    assert notifier.config.user == 'u'
    assert 'p4ss-word' not in repr(notifier.config)


def test_defaults():
    c = Notifier.from_config({'email': {'destination-emails': 'root@localhost'}}).config
    assert (c.server, c.port, c.source_email, c.timeout) == ('localhost', 25, 'root@localhost', 30.0)
    assert (c.starttls, c.use_ssl, c.cafile, c.user, c.rules) == (False, False, None, None, {})


def test_log_filter_removes_password_and_auth_encodings(caplog):
    import base64
    secret = 'Filter-Me-%s' % PASSWORD
    Notifier.from_config(_conf(25, **{'smtp-user': USER, 'smtp-password': secret}))
    encoded = base64.b64encode(('\0%s\0%s' % (USER, secret)).encode()).decode()
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger(LOGGER)
    log.warning('reply to %s and AUTH PLAIN %s', secret, encoded)
    try:
        raise RuntimeError('boom ' + secret)
    except RuntimeError:
        log.debug('failure', exc_info=True)
    # the broker adds the same filter to its own handler for the records of other modules
    other = logging.getLogger('ovirt_hosted_engine_setup.ha.broker.test')
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    notifications.install_log_filter(handler)
    other.addHandler(handler)
    try:
        other.error('password was %s', secret)
    finally:
        other.removeHandler(handler)
    assert secret not in caplog.text and encoded not in caplog.text
    assert caplog.text.count(notifications.FILTERED) >= 3
    assert 'boom' in caplog.text and 'Traceback' in caplog.text
    assert [r.getMessage() for r in records] == ['password was ' + notifications.FILTERED]
