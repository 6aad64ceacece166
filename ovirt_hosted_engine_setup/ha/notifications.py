"""Mail notifications of the HA services (the broker's ``notify`` method).

broker.conf (INI), oVirt's keys first, then the ones added here:

    [email]
    smtp-server=localhost          # host name or address of the SMTP server
    smtp-port=25
    source-email=root@localhost    # envelope sender, {source-email} in the template
    destination-emails=a@x, b@y    # comma separated; required
    smtp-starttls=False            # STARTTLS after EHLO
    smtp-ssl=False                 # implicit TLS from the first byte (port 465)
    smtp-cafile=                   # CA bundle verifying the server; system CAs if empty
    smtp-user=                     # login (needs TLS unless the server is on loopback)
    smtp-password=
    smtp-timeout=30                # seconds, per connection and command

    [notify]
    state_transition=maintenance|start|stop|migrate|up|down

A ``[notify]`` key names a notification type; its value is a regular
expression searched, case-insensitively, in the detail (``Old-New`` for a
state transition). An empty value or a missing key turns that type off.

The template of a type is a complete RFC 822 message,
``notifications/<type>.txt`` (the admin's copy under /etc first, then the
packaged one). ``{source-email}``, ``{destination-emails}``, ``{detail}``,
``{hostname}``, ``{time}`` and ``{type}`` are replaced; any other text,
braces included, is left as written. A Date (and Message-ID) header is added
when the template has none, and From and To from [email] when it lacks them.

``Notifier.notify()`` never raises: it answers ``(sent, reason)`` with a one
line reason, and logs failures (tracebacks at debug level only). The SMTP
password never reaches a log record, a reason or an exception text: it is
removed from every record of this module's logger and from every reason.
"""
import base64
import configparser
import datetime
import email.message
import email.parser
import email.policy
import email.utils
import ipaddress
import logging
import os
import re
import smtplib
import socket
import ssl
import threading
import traceback

from .. import paths

log = logging.getLogger(__name__)

FILTERED = '**FILTERED**'
STATE_TRANSITION = 'state_transition'
PLACEHOLDERS = ('source-email', 'destination-emails', 'detail', 'hostname', 'time', 'type')
_PLACEHOLDER_RE = re.compile(r'\{(%s)\}' % '|'.join(re.escape(p) for p in PLACEHOLDERS))
_ADDRESS_SPLIT_RE = re.compile(r'\s*,\s*')
_TEMPLATE_MIME_HEADERS = ('content-type', 'content-transfer-encoding', 'mime-version')
# CRLF line ends; a non-ASCII body goes quoted-printable or base64, for servers without 8BITMIME
_MESSAGE_POLICY = email.policy.SMTP.clone(cte_type='7bit')

DEFAULTS = {
    'smtp-server': 'localhost',
    'smtp-port': '25',
    'source-email': 'root@localhost',
    'smtp-starttls': 'False',
    'smtp-ssl': 'False',
    'smtp-cafile': '',
    'smtp-user': '',
    'smtp-password': '',
    'smtp-timeout': '30',
}


class ConfigError(Exception):
    """broker.conf or the template cannot be used; the text is one line naming the file, the key and the fix."""


class _SecretScrubber(logging.Filter):
    """Removes registered secrets (and their AUTH encodings) from log records.

    Installed on this module's logger; the broker may also add it to its
    handlers with ``install_log_filter(handler)``.
    """

    def __init__(self):
        super().__init__()
        self._lock = threading.Lock()
        self._secrets = set()

    def add(self, user, password):
        if not password:
            return
        forms = {password}
        raw = password.encode('utf-8', 'surrogateescape')
        forms.add(base64.b64encode(raw).decode('ascii'))
        forms.add(base64.b64encode(b'\0' + (user or '').encode('utf-8', 'surrogateescape')
                                   + b'\0' + raw).decode('ascii'))
        with self._lock:
            self._secrets |= forms

    def scrub(self, text):
        if not text:
            return text
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)
        for s in secrets:
            if s in text:
                text = text.replace(s, FILTERED)
        return text

    def filter(self, record):
        try:
            msg = record.getMessage()
        except Exception:  # a bad format string: leave the record to logging's own handling
            return True
        if record.exc_info and record.exc_info[1] is not None:
            msg = msg + '\n' + ''.join(traceback.format_exception(*record.exc_info)).rstrip()
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = self.scrub(msg), None
        return True


_scrubber = _SecretScrubber()
log.addFilter(_scrubber)


def install_log_filter(handler_or_logger):
    """Add the password filter to a handler or logger of the caller (for example the broker's log handler)."""
    handler_or_logger.addFilter(_scrubber)


def _is_loopback(host):
    if host == 'localhost' or host.endswith('.localhost'):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _one_line(text):
    return ' '.join(str(text).split())


class NotifyConfig:
    """The validated [email] and [notify] settings."""

    def __init__(self, source, server, port, source_email, destinations, starttls, use_ssl,
                 cafile, user, password, timeout, rules):
        self.source = source
        self.server = server
        self.port = port
        self.source_email = source_email
        self.destinations = destinations
        self.starttls = starttls
        self.use_ssl = use_ssl
        self.cafile = cafile
        self.user = user
        self.password = password
        self.timeout = timeout
        self.rules = rules          # type -> (pattern text, compiled regex)

    def __repr__(self):
        return ('NotifyConfig(source=%r, server=%r, port=%r, starttls=%r, ssl=%r, user=%r, '
                'password=%s, destinations=%r, rules=%r)' % (
                    self.source, self.server, self.port, self.starttls, self.use_ssl,
                    self.user, FILTERED if self.password else "''", self.destinations,
                    {k: v[0] for k, v in self.rules.items()}))


def _sections(cfg):
    """{'email': {...}, 'notify': {...}} from a ConfigParser or a dict of sections."""
    out = {'email': {}, 'notify': {}}
    if isinstance(cfg, configparser.RawConfigParser):
        for name in ('email', 'notify'):
            if cfg.has_section(name):
                out[name] = {k: v for k, v in cfg.items(name, raw=True)}
        return out
    for name in ('email', 'notify'):
        section = cfg.get(name) or {}
        if not isinstance(section, dict):
            raise ConfigError('[%s] must be a section of key=value settings' % name)
        out[name] = {str(k).strip().lower(): '' if v is None else str(v) for k, v in section.items()}
    return out


def parse_config(cfg, source='broker.conf'):
    """NotifyConfig from a ConfigParser or {'email': {...}, 'notify': {...}}; ConfigError when invalid."""
    sections = _sections(cfg)
    email_s = dict(DEFAULTS)
    email_s.update({k: v.strip() for k, v in sections['email'].items()})

    def bad(key, problem, fix, section='email'):
        return ConfigError('%s: [%s] %s %s; %s' % (source, section, key, problem, fix))

    def boolean(key):
        value = email_s[key].strip().lower()
        if value in configparser.RawConfigParser.BOOLEAN_STATES:
            return configparser.RawConfigParser.BOOLEAN_STATES[value]
        raise bad(key, '%r is not a boolean' % email_s[key], 'write True or False')

    server = email_s['smtp-server']
    if not server:
        raise bad('smtp-server', 'is empty', 'write the SMTP server host name, for example localhost')
    try:
        port = int(email_s['smtp-port'])
        if not 0 < port < 65536:
            raise ValueError
    except ValueError:
        raise bad('smtp-port', '%r is not a port number' % email_s['smtp-port'],
                  'write a number from 1 to 65535, for example 25') from None
    try:
        timeout = float(email_s['smtp-timeout'])
        if not timeout > 0:
            raise ValueError
    except ValueError:
        raise bad('smtp-timeout', '%r is not a number of seconds' % email_s['smtp-timeout'],
                  'write a positive number, for example 30') from None

    source_email = email_s['source-email']
    if '@' not in email.utils.parseaddr(source_email)[1]:
        raise bad('source-email', '%r is not an email address' % source_email,
                  'write the sender address, for example root@localhost')
    dest_text = email_s.get('destination-emails', '')
    destinations = [d for d in _ADDRESS_SPLIT_RE.split(dest_text.strip()) if d]
    if not destinations:
        raise bad('destination-emails', 'is missing or empty',
                  'write the recipients, comma separated, for example admin@example.com')
    for d in destinations:
        if '@' not in email.utils.parseaddr(d)[1]:
            raise bad('destination-emails', '%r is not an email address' % d,
                      'write the recipients, comma separated, for example admin@example.com')

    starttls = boolean('smtp-starttls')
    use_ssl = boolean('smtp-ssl')
    if starttls and use_ssl:
        raise bad('smtp-starttls', 'and smtp-ssl are both set',
                  'choose one: smtp-ssl=True for implicit TLS (port 465) or smtp-starttls=True')
    cafile = email_s['smtp-cafile'] or None
    if cafile and not os.path.isfile(cafile):
        raise bad('smtp-cafile', 'names %s, which is not a file' % cafile,
                  'point it to the PEM file of the CA that signed the SMTP server certificate')
    user = email_s['smtp-user'] or None
    password = email_s['smtp-password'] if user else None
    _scrubber.add(user, email_s['smtp-password'])
    if user and not (starttls or use_ssl) and not _is_loopback(server):
        raise bad('smtp-user', 'is set but the connection to %s is not encrypted' % server,
                  'set smtp-starttls=True (or smtp-ssl=True) so the password is not sent in clear')

    rules = {}
    for key, pattern in sections['notify'].items():
        pattern = pattern.strip()
        if not pattern:
            continue
        try:
            rules[key] = (pattern, re.compile(pattern, re.IGNORECASE))
        except re.error as e:
            raise bad(key, '%r is not a valid regular expression (%s)' % (pattern, e),
                      'write alternatives such as maintenance|start|stop|migrate|up|down',
                      section='notify') from None
    return NotifyConfig(source, server, port, source_email, destinations, starttls, use_ssl,
                        cafile, user, password, timeout, rules)


def default_template_path(type_=STATE_TRANSITION):
    """The admin's template under /etc if present, else the packaged copy."""
    name = '%s.txt' % type_
    local = os.path.join(paths.NOTIFICATIONS_DIR, name)
    if os.path.isfile(local):
        return local
    return os.path.join(paths.TEMPLATES_DIR, 'notifications', name)


def render_template(template, values):
    """Replace the six placeholders only; other text, braces included, stays as written."""
    def sub(m):
        value = values.get(m.group(1), '')
        # a value never spans lines: no header injection through detail or hostname
        return ' '.join(str(value).splitlines())
    return _PLACEHOLDER_RE.sub(sub, template)


def build_message(text, now, defaults=()):
    """An EmailMessage from the rendered template text; Date, Message-ID and the (name, value)
    pairs of ``defaults`` (From, To) are added when the template has no such header."""
    text = text.replace('\r\n', '\n')
    if '\n\n' in text:
        head, body = text.split('\n\n', 1)
    elif text.strip() and all(re.match(r'^([!-9;-~]+:|[ \t])', ln) for ln in text.splitlines()):
        head, body = text, ''
    else:
        head, body = '', text
    headers = email.parser.Parser(policy=email.policy.default).parsestr(head + '\n\n', headersonly=True)
    msg = email.message.EmailMessage(policy=_MESSAGE_POLICY)
    subtype = 'plain'
    ctype = headers.get('Content-Type')
    if ctype and headers.get_content_maintype() == 'text':
        subtype = headers.get_content_subtype()
    for name, value in headers.items():
        if name.lower() in _TEMPLATE_MIME_HEADERS:
            continue
        msg[name] = value
    if not body.endswith('\n'):
        body += '\n'
    msg.set_content(body, subtype=subtype)
    for name, value in defaults:
        if name not in msg:
            msg[name] = value
    if 'Date' not in msg:
        msg['Date'] = email.utils.format_datetime(now)
    if 'Message-ID' not in msg:
        msg['Message-ID'] = email.utils.make_msgid(domain='ovirt-hosted-engine-ha')
    return msg


def _now(now):
    if now is None:
        return datetime.datetime.now().astimezone()
    if isinstance(now, (int, float)):
        return datetime.datetime.fromtimestamp(now).astimezone()
    if now.tzinfo is None:
        return now.astimezone()
    return now


class Notifier:
    """Sends the notifications of one broker.conf."""

    def __init__(self, config, template_path=None):
        self.config = config
        self.template_path = template_path

    @classmethod
    def from_file(cls, broker_conf_path, template_path=None):
        """Read broker.conf; ConfigError (one line naming the file, key and fix) when unusable."""
        parser = configparser.RawConfigParser(interpolation=None)
        try:
            with open(broker_conf_path, encoding='utf-8') as f:
                parser.read_file(f, source=broker_conf_path)
        except FileNotFoundError:
            raise ConfigError('%s: not found; create it with an [email] section '
                              '(destination-emails=...) and a [notify] section' % broker_conf_path) from None
        except OSError as e:
            raise ConfigError('%s: cannot be read (%s); check its permissions'
                              % (broker_conf_path, e.strerror or e)) from None
        except UnicodeDecodeError:
            raise ConfigError('%s: is not UTF-8 text; rewrite it as INI text' % broker_conf_path) from None
        except configparser.Error as e:
            raise ConfigError('%s: not an INI file (%s); write [email] and [notify] sections of '
                              'key=value lines' % (broker_conf_path, _one_line(e) or type(e).__name__)) from None
        return cls.from_config(parser, template_path=template_path, source=broker_conf_path)

    @classmethod
    def from_config(cls, cfg, template_path=None, source='broker.conf'):
        """From a ConfigParser or {'email': {...}, 'notify': {...}}; ConfigError when invalid."""
        config = parse_config(cfg, source=source)
        notifier = cls(config, template_path=template_path)
        if template_path is not None and not os.path.isfile(template_path):
            raise ConfigError('%s: notification template not found; install the packaged '
                              'state_transition.txt there or point to an existing file' % template_path)
        return notifier

    def template_for(self, type_):
        return self.template_path or default_template_path(type_)

    def render(self, type_, detail, hostname, now=None):
        """The message that notify() would send (an EmailMessage); OSError when the template is unreadable."""
        now = _now(now)
        path = self.template_for(type_)
        with open(path, encoding='utf-8') as f:
            template = f.read()
        values = {
            'source-email': self.config.source_email,
            'destination-emails': ', '.join(self.config.destinations),
            'detail': detail,
            'hostname': hostname,
            'time': now.strftime('%Y-%m-%d %H:%M:%S %Z').strip(),
            'type': type_,
        }
        return build_message(render_template(template, values), now,
                             defaults=(('From', values['source-email']),
                                       ('To', values['destination-emails'])))

    def wants(self, type_, detail):
        """(True, '') when a [notify] rule selects this notification, else (False, reason)."""
        rule = self.config.rules.get(type_)
        if rule is None:
            return False, 'notifications of type %s are off (no [notify] %s in %s)' % (
                type_, type_, self.config.source)
        if not rule[1].search(detail or ''):
            return False, 'filtered by [notify] %s' % type_
        return True, ''

    def notify(self, type_, detail, hostname, now=None):
        """Send one notification; (sent, one line reason). Never raises."""
        wanted, reason = self.wants(type_, detail)
        if not wanted:
            log.debug('notification %s %s not sent: %s', type_, detail, reason)
            return False, reason
        try:
            msg = self.render(type_, detail, hostname, now)
        except (OSError, UnicodeDecodeError) as e:
            reason = 'cannot read the notification template %s (%s); reinstall it or fix ' \
                     'its permissions' % (self.template_for(type_), _one_line(getattr(e, 'strerror', None) or e))
            log.warning('notification %s %s not sent: %s', type_, detail, reason)
            return False, reason
        except Exception as e:  # a template the email package cannot turn into a message
            reason = 'the notification template %s is not a valid message (%s); fix its headers' % (
                self.template_for(type_), _one_line(e))
            log.warning('notification %s %s not sent: %s', type_, detail, reason)
            log.debug('template failure', exc_info=True)
            return False, _scrubber.scrub(reason)
        try:
            self._send(msg)
        except Exception as e:
            reason = _scrubber.scrub(self._explain(e))
            log.warning('notification %s %s not sent: %s', type_, detail, reason)
            log.debug('SMTP failure', exc_info=True)
            return False, reason
        reason = 'sent to %s through %s:%d' % (', '.join(self.config.destinations),
                                              self.config.server, self.config.port)
        log.info('notification %s %s %s', type_, detail, reason)
        return True, reason

    def _tls_context(self):
        return ssl.create_default_context(cafile=self.config.cafile)

    def _send(self, msg):
        c = self.config
        if c.use_ssl:
            smtp = smtplib.SMTP_SSL(c.server, c.port, timeout=c.timeout, context=self._tls_context())
        else:
            smtp = smtplib.SMTP(c.server, c.port, timeout=c.timeout)
        try:
            smtp.ehlo_or_helo_if_needed()
            if c.starttls:
                smtp.starttls(context=self._tls_context())
                smtp.ehlo()
            if c.user:
                _login(smtp, c.user, c.password or '')
            smtp.send_message(msg, from_addr=c.source_email, to_addrs=c.destinations)
        finally:
            try:
                smtp.quit()
            except Exception:
                smtp.close()

    def _explain(self, e):
        """One line saying what failed and what to check."""
        c = self.config
        where = '%s:%d' % (c.server, c.port)
        conf = c.source
        if isinstance(e, smtplib.SMTPAuthenticationError):
            return ('SMTP server %s refused the login of %r (%s); check smtp-user and smtp-password in %s'
                    % (where, c.user, _smtp_reply(e), conf))
        if isinstance(e, smtplib.SMTPNotSupportedError) and 'STARTTLS' in str(e):
            return ('SMTP server %s does not offer STARTTLS (%s); set smtp-starttls=False or '
                    'smtp-ssl=True in %s' % (where, _one_line(e), conf))
        if isinstance(e, smtplib.SMTPException) and c.user and 'AUTH' in str(e):
            return ('SMTP server %s does not accept a login here (%s); enable smtp-starttls or '
                    'smtp-ssl, or remove smtp-user in %s' % (where, _one_line(e), conf))
        if isinstance(e, ssl.SSLCertVerificationError):
            return ('the certificate of SMTP server %s cannot be verified (%s); set smtp-cafile in %s '
                    'to the CA that signed it' % (where, _one_line(e.verify_message or e), conf))
        if isinstance(e, ssl.SSLError):
            return ('TLS with SMTP server %s failed (%s); check smtp-ssl/smtp-starttls and the '
                    'port in %s' % (where, _one_line(e.reason or e), conf))
        if isinstance(e, smtplib.SMTPRecipientsRefused):
            refused = ', '.join('%s (%s)' % (a, _one_line(_decode(r[1])))
                                for a, r in e.recipients.items())
            return 'SMTP server %s refused every recipient: %s; check destination-emails in %s' % (
                where, refused, conf)
        if isinstance(e, smtplib.SMTPSenderRefused):
            return 'SMTP server %s refused the sender %s (%s); check source-email in %s' % (
                where, c.source_email, _smtp_reply(e), conf)
        if isinstance(e, smtplib.SMTPResponseException):
            return 'SMTP server %s answered %s; check the server log' % (where, _smtp_reply(e))
        if isinstance(e, smtplib.SMTPServerDisconnected):
            return 'SMTP server %s closed the connection (%s); check smtp-ssl, smtp-starttls and the port in %s' % (
                where, _one_line(e) or 'no reason given', conf)
        if isinstance(e, (socket.timeout, TimeoutError)):
            return 'SMTP server %s did not answer within %g s; check that it is reachable' % (where, c.timeout)
        if isinstance(e, socket.gaierror):
            return 'cannot resolve SMTP server %s (%s); check smtp-server in %s' % (
                c.server, _one_line(e.strerror or e), conf)
        if isinstance(e, OSError):
            return 'cannot connect to SMTP server %s (%s); check smtp-server and smtp-port in %s' % (
                where, _one_line(e.strerror or e), conf)
        if isinstance(e, UnicodeError):  # its text may quote a character of the password
            return 'sending to SMTP server %s failed (%s); check the text of %s' % (
                where, type(e).__name__, conf)
        return 'sending to SMTP server %s failed (%s: %s)' % (where, type(e).__name__, _one_line(e))


def _b64(raw):
    return base64.b64encode(raw).decode('ascii')


def _login(smtp, user, password):
    """smtplib's login, or for a non-ASCII user or password (which smtplib cannot encode)
    AUTH PLAIN (RFC 4616) or LOGIN with UTF-8 credentials."""
    if user.isascii() and password.isascii():
        smtp.login(user, password)
        return
    smtp.ehlo_or_helo_if_needed()
    if not smtp.has_extn('auth'):
        raise smtplib.SMTPNotSupportedError('SMTP AUTH extension not supported by server.')
    offered = smtp.esmtp_features['auth'].upper().split()
    u, p = user.encode('utf-8'), password.encode('utf-8')
    if 'PLAIN' in offered:
        code, resp = smtp.docmd('AUTH', 'PLAIN ' + _b64(b'\0' + u + b'\0' + p))
    elif 'LOGIN' in offered:
        code, resp = smtp.docmd('AUTH', 'LOGIN ' + _b64(u))
        if code == 334:
            code, resp = smtp.docmd(_b64(p))
    else:
        raise smtplib.SMTPException('No suitable authentication method found for a non-ASCII '
                                    'password (the server offers %s; AUTH PLAIN or LOGIN needed).'
                                    % ' '.join(offered))
    if code not in (235, 503):
        raise smtplib.SMTPAuthenticationError(code, resp)


def _decode(value):
    if isinstance(value, bytes):
        return value.decode('utf-8', 'replace')
    return str(value)


def _smtp_reply(e):
    return _one_line('%s %s' % (e.smtp_code, _decode(e.smtp_error)))
