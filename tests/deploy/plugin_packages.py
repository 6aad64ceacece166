"""Loading a plugin package of plugins/ (a directory with a dash in its path, so not
importable by name) as a module of its own, and the context a plugin under test runs in (an
environment and a dialog answering from a list), for the tests of its plugins."""
import importlib.util
import os
import sys

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def load(group, package):
    """plugins/<group>/<package> as the module '<package>_plugins_under_test' (loaded once:
    every test module gets the same one), its plugin modules importable as its submodules."""
    name = '%s_plugins_under_test' % package
    if name not in sys.modules:
        directory = os.path.join(TOP, 'plugins', group, package)
        spec = importlib.util.spec_from_file_location(
            name, os.path.join(directory, '__init__.py'), submodule_search_locations=[directory])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


class Dialog:
    """Typed answers, in order; records the questions (name, note, default)."""
    def __init__(self, answers):
        self.answers = list(answers)
        self.asked = []
        self.last_answer_typed = False

    def query_string(self, name, note, default=None, validator=None, **_kw):
        self.asked.append((name, note, default))
        self.last_answer_typed = True
        while True:
            value = self.answers.pop(0)
            value = str(default) if value == '' else value
            try:
                return validator(value) if validator is not None else value
            except ValueError as e:
                self.asked.append(('invalid', str(e), None))

    def query_yes_no(self, name, note, default=None):
        self.asked.append((name, note, default))
        self.last_answer_typed = True
        return self.answers.pop(0)


class Context:
    """What a plugin sees of the runner: its environment and a Dialog."""
    def __init__(self, env, answers=()):
        self.environment = env
        self.dialog = Dialog(answers)

    def origin(self, key):
        return None
