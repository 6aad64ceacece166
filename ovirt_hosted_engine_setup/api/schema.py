"""The API schema (schema.yaml): verbs, parameters, results and error codes.

Read by the client (parameter order for positional calls, secret names) and by
the embedded host agent (validation, defaults, which verbs exist).
"""
import copy
import os
import re
import threading

import yaml

SCHEMA_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'schema.yaml')

UUID_RE = re.compile(r'^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-'
                     r'[0-9a-fA-F]{12}$')

_TYPE_CHECKS = {
    'string': lambda v: isinstance(v, str),
    'uuid': lambda v: isinstance(v, str) and UUID_RE.match(v) is not None,
    'int': lambda v: isinstance(v, int) and not isinstance(v, bool),
    'number': lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    'bool': lambda v: isinstance(v, bool),
    'object': lambda v: isinstance(v, dict),
    'array': lambda v: isinstance(v, list),
    'any': lambda v: True,
}


class SchemaError(Exception):
    """The schema file itself is wrong."""


class InvalidParams(Exception):
    """Parameters that do not match a verb's schema (JSON-RPC invalidParams)."""

    def __init__(self, message, param=None):
        super().__init__(message)
        self.param = param


class Param:
    def __init__(self, verb, spec, enums=None):
        try:
            self.name = spec['name']
        except (KeyError, TypeError):
            raise SchemaError('%s: a parameter without a name' % verb)
        self.types = _types(verb, self.name, spec.get('type', 'any'))
        self.items = _types(verb, self.name, spec['items']) if 'items' in spec else None
        if self.items is not None and 'array' not in self.types:
            raise SchemaError('%s: parameter %s has items but is not an array' % (verb, self.name))
        self.enum = spec.get('enum')
        self.allowed = None
        if self.enum is not None:
            values = (enums or {}).get(self.enum)
            if isinstance(values, list):
                self.allowed = list(values)
            elif isinstance(values, dict):
                self.allowed = list(values.values())
                if 'string' in self.types:
                    self.allowed += list(values)
            else:
                raise SchemaError('%s: parameter %s names the unknown enum %r'
                                  % (verb, self.name, self.enum))
        self.has_default = 'default' in spec
        self.default = spec.get('default')
        self.required = bool(spec.get('required', not self.has_default))
        self.secret = bool(spec.get('secret', False))
        self.description = spec.get('description', '')

    def accepts(self, value):
        return any(_TYPE_CHECKS[t](value) for t in self.types)

    @property
    def type_text(self):
        return ' or '.join('a UUID' if t == 'uuid' else t for t in self.types)

    def check(self, verb, value):
        """InvalidParams naming this parameter unless value fits its type, items and enum."""
        if not self.accepts(value):
            raise InvalidParams('parameter %s of %s must be %s, got %s'
                                % (self.name, verb, self.type_text, _show(value)), self.name)
        if self.items is not None:
            for i, item in enumerate(value):
                if not any(_TYPE_CHECKS[t](item) for t in self.items):
                    raise InvalidParams('parameter %s of %s must be an array of %s; item %d is %s'
                                        % (self.name, verb, ' or '.join(
                                            'UUID' if t == 'uuid' else t for t in self.items), i,
                                           _show(item)), self.name)
        if self.allowed is not None and not any(
                value == a and type(value) is type(a) for a in self.allowed):
            raise InvalidParams('parameter %s of %s must be one of %s, got %s'
                                % (self.name, verb, ', '.join(str(a) for a in self.allowed),
                                   _show(value)), self.name)


def _types(verb, name, types):
    types = tuple(types) if isinstance(types, list) else (types,)
    for t in types:
        if t not in _TYPE_CHECKS:
            raise SchemaError('%s: parameter %s has unknown type %r' % (verb, name, t))
    return types


def _show(value):
    if isinstance(value, str):
        return repr(value) if len(value) <= 60 else repr(value[:60] + '...')
    return _json_type(value)


class Verb:
    def __init__(self, name, spec, enums=None):
        self.name = name
        self.namespace, self.verb = name.split('.', 1)
        spec = spec or {}
        self.description = spec.get('description', '')
        self.params = [Param(name, p, enums) for p in (spec.get('params') or [])]
        self.result = spec.get('result') or {}
        names = [p.name for p in self.params]
        if len(set(names)) != len(names):
            raise SchemaError('%s: repeated parameter names' % name)

    @property
    def param_names(self):
        return [p.name for p in self.params]

    def bind(self, args, kwargs):
        """Params dict from a positional + keyword call (client side)."""
        if len(args) > len(self.params):
            raise TypeError('%s takes at most %d parameters (%d given)'
                            % (self.name, len(self.params), len(args)))
        out = {}
        for p, value in zip(self.params, args):
            out[p.name] = value
        for k, v in kwargs.items():
            if k in out:
                raise TypeError('%s got parameter %s twice' % (self.name, k))
            out[k] = v
        return out

    def validate(self, params):
        """Check params (dict, list or None); return a dict with defaults filled.

        Raises InvalidParams naming the offending parameter.
        """
        if params is None:
            params = {}
        if isinstance(params, list):
            if len(params) > len(self.params):
                raise InvalidParams('%s takes at most %d parameters, %d given'
                                    % (self.name, len(self.params), len(params)))
            params = {p.name: v for p, v in zip(self.params, params)}
        if not isinstance(params, dict):
            raise InvalidParams('params of %s must be an object' % self.name)
        known = {p.name: p for p in self.params}
        for key in params:
            if key not in known:
                raise InvalidParams('unknown parameter %s for %s' % (key, self.name), key)
        out = {}
        for p in self.params:
            if p.name in params:
                value = params[p.name]
                p.check(self.name, value)
                out[p.name] = value
            elif p.required:
                raise InvalidParams('missing required parameter %s for %s'
                                    % (p.name, self.name), p.name)
            elif p.has_default:
                out[p.name] = copy.deepcopy(p.default)
        return out


def _json_type(value):
    if value is None:
        return 'null'
    if isinstance(value, bool):
        return 'bool'
    if isinstance(value, int):
        return 'int'
    if isinstance(value, float):
        return 'number'
    if isinstance(value, str):
        return 'string'
    if isinstance(value, list):
        return 'array'
    if isinstance(value, dict):
        return 'object'
    return type(value).__name__


class Schema:
    def __init__(self, data):
        if not isinstance(data, dict) or 'namespaces' not in data:
            raise SchemaError('schema has no namespaces')
        self.data = data
        self.enums = data.get('enums') or {}
        self.constants = data.get('constants') or {}
        self.verbs = {}
        for ns, verbs in data['namespaces'].items():
            for vname, spec in (verbs or {}).items():
                name = '%s.%s' % (ns, vname)
                self.verbs[name] = Verb(name, spec, self.enums)
        errors = data.get('errors') or {}
        self.errors = {}
        for group in ('protocol', 'vdsm'):
            for code, e in (errors.get(group) or {}).items():
                if not isinstance(e, dict) or set(e) != {'name', 'message'}:
                    raise SchemaError('error %s must have exactly a name and a message, has %r'
                                      % (code, e))
                self.errors[int(code)] = e
        self.error_codes = {e['name']: code for code, e in self.errors.items()}
        if len(self.error_codes) != len(self.errors):
            raise SchemaError('two errors have the same name')
        self.secret_names = frozenset(
            ['password'] + [p.name for v in self.verbs.values() for p in v.params if p.secret])

    @classmethod
    def load(cls, path=SCHEMA_PATH):
        # libyaml's parser when PyYAML has it (ten times faster: every process of the
        # product, and the engine VM's boot, loads the schema)
        loader = getattr(yaml, 'CSafeLoader', yaml.SafeLoader)
        with open(path, encoding='utf-8') as f:
            return cls(yaml.load(f, Loader=loader))

    def verb(self, name):
        return self.verbs.get(name)

    def namespaces(self):
        return sorted({v.namespace for v in self.verbs.values()})

    def error_message(self, code):
        e = self.errors.get(int(code))
        return e['message'] if e else None


_cached = None
_lock = threading.Lock()


def get_schema():
    """The schema shipped with the package (loaded once)."""
    global _cached
    with _lock:
        if _cached is None:
            _cached = Schema.load()
        return _cached


def enum(name):
    """An enumeration of the shipped schema: a list of values, or {name: number}."""
    return get_schema().enums[name]


def error_code(name):
    """The code of the error the shipped schema calls name (VDSM's name, e.g. 'general')."""
    return get_schema().error_codes[name]


# JSON-RPC protocol error codes (the schema's "protocol" errors).
PARSE_ERROR = error_code('parseError')
INVALID_REQUEST = error_code('invalidRequest')
METHOD_NOT_FOUND = error_code('methodNotFound')
INVALID_PARAMS = error_code('invalidParams')
INTERNAL_ERROR = error_code('internalError')


def constant(name):
    """A value of the "constants" section of the shipped schema (a copy)."""
    return copy.deepcopy(get_schema().constants[name])


def redact(value, secret_names=frozenset(['password'])):
    """A copy of value with every dict entry named as a secret replaced by '********'."""
    if isinstance(value, dict):
        return {k: ('********' if k in secret_names else redact(v, secret_names))
                for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, secret_names) for v in value]
    return value
