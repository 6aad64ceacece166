"""Loading plugin groups from a plugin path."""
import importlib.util
import os
import sys
import types

from .errors import PluginLoadError
from .plugin import PluginBase

PACKAGE = 'ovirt_he_plugins'


def _package(name, path=None):
    module = sys.modules.get(name)
    if module is None:
        module = types.ModuleType(name)
        module.__path__ = [path] if path else []
        sys.modules[name] = module
    return module


def find_group(group, plugin_path):
    for base in plugin_path:
        candidate = os.path.join(base, group)
        if os.path.isdir(candidate):
            return candidate
    raise PluginLoadError('Plugin group %s not found in the plugin path %s'
                          % (group, ':'.join(plugin_path)))


def load_groups(groups, plugin_path, context):
    """Import every plugin (sub-directory with __init__.py) of each group; return instances."""
    _package(PACKAGE)
    instances = []
    for group in groups:
        directory = find_group(group, plugin_path)
        group_pkg = '%s.%s' % (PACKAGE, group.replace('-', '_'))
        _package(group_pkg, directory)
        for entry in sorted(os.listdir(directory)):
            plugin_dir = os.path.join(directory, entry)
            init = os.path.join(plugin_dir, '__init__.py')
            if not os.path.isfile(init):
                continue
            name = '%s.%s' % (group_pkg, entry.replace('-', '_'))
            try:
                if name not in sys.modules:
                    spec = importlib.util.spec_from_file_location(
                        name, init, submodule_search_locations=[plugin_dir])
                    module = importlib.util.module_from_spec(spec)
                    sys.modules[name] = module
                    spec.loader.exec_module(module)
            except Exception as e:
                sys.modules.pop(name, None)
                raise PluginLoadError('Cannot load plugin %s/%s: %s: %s'
                                      % (group, entry, type(e).__name__, e)) from e
            classes = set()
            for modname, module in list(sys.modules.items()):
                if modname == name or modname.startswith(name + '.'):
                    for value in vars(module).values():
                        if (isinstance(value, type) and issubclass(value, PluginBase)
                                and value is not PluginBase
                                and value.__module__ == modname):
                            classes.add(value)
            for cls in sorted(classes, key=lambda c: (c.__module__, c.__name__)):
                instances.append(cls(context))
    return instances
